// Validates an AsyncAPI document with the official parser (@asyncapi/parser, pinned in
// package-lock.json; issue 16). argv[2]: the document. stdout: JSON
//   {"parser": version, "diagnostics": [{severity, code, message, path}],
//    "channels": {id: {address, messages: {id: {name, payloadTitle, payloadProperties,
//                 reasons, keyTypes, headersType}}, kafkaTopic}},
//    "operations": {id: {action, channel, messages}}}
// exit 0 when the parser reports no error (warnings are listed), else 1.
"use strict";
const path = require("path");
const { Parser, fromFile, DiagnosticSeverity } = require("@asyncapi/parser");

async function main() {
  const file = path.resolve(process.argv[2]);
  const parser = new Parser();
  const { document, diagnostics } = await fromFile(parser, file).parse();
  const out = {
    parser: require("@asyncapi/parser/package.json").version,
    diagnostics: diagnostics.map((d) => ({
      severity: DiagnosticSeverity[d.severity], code: String(d.code), message: d.message, path: d.path,
    })),
  };
  if (document) {
    out.channels = {};
    for (const channel of document.channels()) {
      const messages = {};
      for (const message of channel.messages()) {
        const payload = message.payload();
        const props = payload && payload.properties() ? Object.keys(payload.properties()) : [];
        const reason = payload && payload.properties() && payload.properties().reason;
        const key = message.bindings().get("kafka") && message.bindings().get("kafka").value().key;
        messages[message.id()] = {
          name: message.name(),
          payloadTitle: payload ? payload.title() : null,
          payloadProperties: props.sort(),
          reasons: reason && reason.enum() ? reason.enum() : null,
          keyTypes: key ? key.type : null,
          headersType: message.headers() ? message.headers().type() : null,
        };
      }
      const kafka = channel.bindings().get("kafka");
      out.channels[channel.id()] = {
        address: channel.address(),
        messages,
        kafkaTopic: kafka ? kafka.value().topic : null,
      };
    }
    out.operations = {};
    for (const op of document.operations()) {
      out.operations[op.id()] = {
        action: op.action(),
        channel: op.channels().all().map((c) => c.address()),
        messages: op.messages().all().map((m) => m.name()),
      };
    }
  }
  process.stdout.write(JSON.stringify(out, null, 1));
  process.exitCode = document && !diagnostics.some((d) => d.severity === DiagnosticSeverity.Error) ? 0 : 1;
}

main().catch((error) => { console.error(error && error.stack ? error.stack : String(error)); process.exitCode = 2; });
