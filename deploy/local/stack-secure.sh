# shellcheck shell=bash
# deploy/local/stack-secure.sh — sourced by deploy/local/stack for `up --secure` (issue 17).
#
# A throw-away CA and certificates made at start with the machine's openssl (PEM for the
# Python clients) and keytool (the broker's PKCS12 truststore), then:
#   Kafka       keeps its PLAINTEXT listener (probes, the rest of the suite) and adds
#                 SASL_SSL  SCRAM-SHA-512 (a user created at storage format time with
#                           `--add-scram`) and OAUTHBEARER (Kafka's unsecured JWS validator:
#                           any unsigned token with `sub`, for tests of the token file only)
#                 SSL       TLS requiring a client certificate (ssl.client.auth=required)
#               Both advertise `localhost`, the only name in the broker's certificate, so a
#               client connecting to 127.0.0.1 sees a hostname mismatch.
#   PostgreSQL  ssl=on with a certificate for `localhost` from the same CA; TCP connections
#               must use TLS and log in with a client certificate (`cert`: CN = the role).
# Everything lives in $STACK_DIR/tls (0700); `down` removes it with the rest.

TLS_DIR=$STACK_DIR/tls
TLS_DAYS=30
# The names the server certificates hold. `localhost` only for the stack (a client connecting to
# 127.0.0.1 must see a mismatch); docker-compose.secure.yml needs kafka,postgres,localhost.
TLS_NAMES=${STACK_TLS_NAMES:-localhost}
# 600 for the stack; `stack certs` for containers makes them readable by the containers' users.
TLS_FILE_MODE=600
SCRAM_USER=identity-worker

# ----------------------------------------------------------------------------- files

tls_generate() {
    [[ -f $TLS_DIR/.complete ]] && return 0
    command -v openssl >/dev/null || apt_install openssl
    command -v keytool >/dev/null || ensure_java
    log "making a throw-away CA and certificates in $TLS_DIR"
    rm -rf "$TLS_DIR"
    mkdir -p "$TLS_DIR"
    chmod 700 "$TLS_DIR"
    (
        cd "$TLS_DIR"
        umask 077
        random_secret >store.password
        random_secret >kafka-client.key.password
        random_secret >sasl.password
        printf '%s\n' "$SCRAM_USER" >sasl.username
        openssl req -x509 -newkey rsa:2048 -nodes -days "$TLS_DAYS" -sha256 \
            -subj "/CN=identity-worker local stack CA" -keyout ca.key -out ca.pem \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        local san
        san=$(printf 'DNS:%s,' ${TLS_NAMES//,/ })
        tls_issue broker "${TLS_NAMES%%,*}" "subjectAltName=${san%,}
extendedKeyUsage=serverAuth,clientAuth"
        tls_issue pg-server "${TLS_NAMES%%,*}" "subjectAltName=${san%,}
extendedKeyUsage=serverAuth"
        tls_issue kafka-client identity-worker "extendedKeyUsage=clientAuth"
        tls_issue pg-client "$PG_ROLE" "extendedKeyUsage=clientAuth"
        # The Kafka client's key is encrypted (KAFKA_SSL_KEY_PASSWORD_FILE is exercised).
        openssl pkcs8 -topk8 -v2 aes-256-cbc -in kafka-client.key -out kafka-client.key.enc \
            -passout file:kafka-client.key.password
        mv kafka-client.key.enc kafka-client.key
        # The broker's keystore and truststore, PKCS12.
        openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
            -out broker.p12 -passout file:store.password
        # The same for brokers configured with PEM stores (ssl.keystore.type=PEM, no password).
        cat broker.key broker.pem ca.pem >broker-keystore.pem
        keytool -importcert -noprompt -storetype PKCS12 -alias stack-ca -file ca.pem \
            -keystore truststore.p12 -storepass "$(cat store.password)" >/dev/null 2>&1
        # For the apache/kafka image (docker-compose.secure.yml): its JAAS file and store passwords.
        printf 'KafkaServer {\n  org.apache.kafka.common.security.scram.ScramLoginModule required;\n};\n' \
            >kafka_server_jaas.conf
        rm -f ./*.csr ./*.srl
        chmod "$TLS_FILE_MODE" ./*
    ) || die "could not make the certificates in $TLS_DIR (openssl/keytool failed)"
    touch "$TLS_DIR/.complete"
    printf '%s\n' "$TLS_NAMES" >"$TLS_DIR/names"
}

random_secret() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; echo; }

# tls_issue NAME CN EXTENSIONS: NAME.key and NAME.pem signed by ca.pem (in the current folder).
tls_issue() {
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$TLS_DAYS" \
        -sha256 -out "$1.pem" -extfile <(printf '%s\n' "$3") 2>/dev/null
}

# ----------------------------------------------------------------------------- Kafka

# Add the SASL_SSL and SSL listeners to the server.properties kafka_write_config wrote.
kafka_secure_config() {
    local port=$1 cport=$2 sasl_port ssl_port ports pass
    ports=$(free_ports 2)
    sasl_port=${ports% *}
    ssl_port=${ports#* }
    printf '%s\n' "$sasl_port" >"$KAFKA_DIR/sasl_ssl_port"
    printf '%s\n' "$ssl_port" >"$KAFKA_DIR/ssl_port"
    pass=$(cat "$TLS_DIR/store.password")
    sed -i \
        -e "s|^listeners=.*|listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sasl_port,SSL://127.0.0.1:$ssl_port,CONTROLLER://127.0.0.1:$cport|" \
        -e "s|^advertised.listeners=.*|advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://localhost:$sasl_port,SSL://localhost:$ssl_port|" \
        -e "s|^listener.security.protocol.map=.*|listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT|" \
        "$KAFKA_DIR/server.properties"
    cat >>"$KAFKA_DIR/server.properties" <<EOF

# deploy/local/stack --secure (issue 17): TLS from a throw-away CA, SCRAM users made at format time.
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/broker.p12
ssl.keystore.password=$pass
ssl.key.password=$pass
ssl.truststore.type=PKCS12
ssl.truststore.location=$TLS_DIR/truststore.p12
ssl.truststore.password=$pass
listener.name.ssl.ssl.client.auth=required
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,OAUTHBEARER
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="broker";
# Deny by default (issue 26): only the ACLs kafka_secure_acls grants, as Kafka's documentation
# sets up a secured cluster. The plain and controller listeners (User:ANONYMOUS) are the
# stack's own administration and the brokers' traffic: super user.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:ANONYMOUS
EOF
    chmod 600 "$KAFKA_DIR/server.properties"
}

# Extra arguments of `kafka-storage format`: the SCRAM user of the SASL_SSL listener.
kafka_secure_format_args() {
    printf '%s\n' --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$(cat "$TLS_DIR/sasl.password")]"
}

# The worker's ACLs (deploy/local/kafka/WorkerAcls.java, docs/security.md#acls) for its SCRAM
# and OAUTHBEARER user and its mutual-TLS certificate, over the plain listener $1.
kafka_secure_acls() {
    local classes=$STACK_DIR/acl-classes
    if [[ ! -f $classes/WorkerAcls.class ]]; then
        mkdir -p "$classes"
        javac -nowarn -cp "$KAFKA_HOME/libs/*" -d "$classes" "$HERE/kafka/WorkerAcls.java" >&2 ||
            die "cannot compile deploy/local/kafka/WorkerAcls.java"
    fi
    # The last two: OAUTHBEARER subjects lacking one ACL each (tests/secure/test_deny_by_default.py).
    java -cp "$KAFKA_HOME/libs/*:$classes" WorkerAcls "$1" "User:$SCRAM_USER" "User:CN=$SCRAM_USER" \
        User:no-describe-configs-DESCRIBE_CONFIGS User:no-write-WRITE >&2 ||
        die "cannot create the worker's ACLs"
}

# ------------------------------------------------------------------------ PostgreSQL

# TLS on, and TCP logins only over TLS with a client certificate (its CN is the role).
pg_secure_config() {
    local home=$1
    install -m 600 ${PG_OS_USER:+-o "$PG_OS_USER"} "$TLS_DIR/pg-server.pem" "$home/data/server.crt"
    install -m 600 ${PG_OS_USER:+-o "$PG_OS_USER"} "$TLS_DIR/pg-server.key" "$home/data/server.key"
    install -m 600 ${PG_OS_USER:+-o "$PG_OS_USER"} "$TLS_DIR/ca.pem" "$home/data/root.crt"
    cat >>"$home/data/postgresql.conf" <<EOF
# deploy/local/stack --secure (issue 17)
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'root.crt'
ssl_min_protocol_version = 'TLSv1.2'
EOF
    as_pg tee "$home/data/pg_hba.conf" >/dev/null <<EOF
# deploy/local/stack --secure: the unix socket for the stack itself, TLS + certificate otherwise.
local   all all                trust
hostssl all all 127.0.0.1/32   cert
EOF
}

# The TLS URL of database $2 on port $1 (libpq and asyncpg read the same parameters).
pg_secure_url() {
    printf 'postgresql://%s@localhost:%s/%s?sslmode=verify-full&sslrootcert=%s&sslcert=%s&sslkey=%s' \
        "$PG_ROLE" "$1" "$2" "$TLS_DIR/ca.pem" "$TLS_DIR/pg-client.pem" "$TLS_DIR/pg-client.key"
}

# ------------------------------------------------------------------------- exports

# Write $STACK_DIR/env.{sasl_ssl,ssl,plain} (one profile each) and print the SASL_SSL one.
secure_exports() {
    local pg=$1 plain=$2 sasl ssl
    kafka_secure_acls "$plain"
    sasl=localhost:$(cat "$KAFKA_DIR/sasl_ssl_port")
    ssl=localhost:$(cat "$KAFKA_DIR/ssl_port")
    {
        printf 'export KAFKA_BOOTSTRAP_SERVERS=%q\n' "$sasl"
        printf 'export KAFKA_SECURITY_PROTOCOL=SASL_SSL\n'
        printf 'export KAFKA_SASL_MECHANISM=SCRAM-SHA-512\n'
        printf 'export KAFKA_SSL_CA_LOCATION=%q\n' "$TLS_DIR/ca.pem"
        printf 'export KAFKA_SASL_USERNAME=%q\n' "$SCRAM_USER"
        printf 'export KAFKA_SASL_PASSWORD_FILE=%q\n' "$TLS_DIR/sasl.password"
        printf 'export DATABASE_URL=%q\n' "$pg"
    } >"$STACK_DIR/env.sasl_ssl"
    {
        printf 'export KAFKA_BOOTSTRAP_SERVERS=%q\n' "$ssl"
        printf 'export KAFKA_SECURITY_PROTOCOL=SSL\n'
        printf 'export KAFKA_SSL_CA_LOCATION=%q\n' "$TLS_DIR/ca.pem"
        printf 'export KAFKA_SSL_CERTIFICATE_LOCATION=%q\n' "$TLS_DIR/kafka-client.pem"
        printf 'export KAFKA_SSL_KEY_LOCATION=%q\n' "$TLS_DIR/kafka-client.key"
        printf 'export KAFKA_SSL_KEY_PASSWORD_FILE=%q\n' "$TLS_DIR/kafka-client.key.password"
        printf 'export DATABASE_URL=%q\n' "$pg"
    } >"$STACK_DIR/env.ssl"
    {
        printf 'export KAFKA_BOOTSTRAP_SERVERS=%q\n' "$plain"
        printf 'export DATABASE_URL=%q\n' "$pg"
    } >"$STACK_DIR/env.plain"
    cp "$STACK_DIR/env.sasl_ssl" "$STACK_DIR/env"
    cat "$STACK_DIR/env.sasl_ssl"
    printf '# mutual TLS instead (listener SSL):   . %s\n' "$STACK_DIR/env.ssl"
    printf '# the plain listener of this broker:   . %s\n' "$STACK_DIR/env.plain"
}
