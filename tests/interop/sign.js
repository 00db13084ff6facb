// Signs tokens with Node's jsonwebtoken, an implementation independent of PyJWT (issue 3, interop).
// stdin: {"tokens": [{"name", "alg", "key", "kid"?, "payload"}]}; stdout: {"<name>": "<token>", ...}
"use strict";
const jwt = require("jsonwebtoken");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const spec = JSON.parse(input);
  const out = {};
  for (const t of spec.tokens) {
    const options = { algorithm: t.alg, noTimestamp: true, header: { typ: "JWT" } };
    if (t.kid !== undefined) options.keyid = t.kid;
    out[t.name] = jwt.sign(t.payload, t.key, options);
  }
  process.stdout.write(JSON.stringify(out));
});
