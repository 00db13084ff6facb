-- 0001: the configuration store of DESIGN §1 and §5.
--
-- The CHECK constraints enforce the formats of §1 by themselves, so a row written by hand
-- (psql, another tool) is held to the same rules as `config apply` and the admin commands.
-- Constraint names are stable: the admin commands turn a violation into one line by name
-- (worker/store/db.py), never by echoing PostgreSQL's detail, which would show the row and
-- with it a secret. The one rule SQL cannot check is that a custom field's regex is valid
-- RE2 syntax (M4); the admin commands check it before writing, the loader after reading.
--
-- Every change notifies the channel `identity_config` with the community id (C1); a
-- TRUNCATE notifies `*` (reload everything). PostgreSQL delivers notifications at commit
-- and folds identical ones of a transaction into one.

-- ------------------------------------------------------------------ RSA public key size

-- One DER element at byte `pos` (0-based): its tag, where its content starts, its length.
CREATE FUNCTION identity_der_element(der bytea, pos integer, OUT tag integer, OUT body integer, OUT len integer)
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    first integer;
    octets integer;
BEGIN
    tag := get_byte(der, pos);
    first := get_byte(der, pos + 1);
    IF first < 128 THEN
        len := first;
        body := pos + 2;
    ELSE
        octets := first - 128;
        IF octets < 1 OR octets > 3 THEN
            RAISE EXCEPTION 'unsupported DER length';
        END IF;
        len := 0;
        FOR i IN 1..octets LOOP
            len := len * 256 + get_byte(der, pos + 1 + i);
        END LOOP;
        body := pos + 2 + octets;
    END IF;
    IF body + len > length(der) THEN
        RAISE EXCEPTION 'truncated DER';
    END IF;
END
$$;

-- The modulus size in bits of one PEM RSA public key (`BEGIN PUBLIC KEY`, i.e.
-- SubjectPublicKeyInfo with rsaEncryption, or `BEGIN RSA PUBLIC KEY`, i.e. PKCS#1), or
-- NULL when the text is anything else: a private key, another algorithm, two keys, junk.
CREATE FUNCTION identity_rsa_public_key_bits(pem text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    parts text[];
    der bytea;
    outer_seq record;
    algorithm record;
    oid record;
    bit_string record;
    rsa_key record;
    modulus record;
    pos integer;
    remaining integer;
BEGIN
    parts := regexp_match(
        pem,
        '^\s*-----BEGIN (RSA )?PUBLIC KEY-----([A-Za-z0-9+/=\s]+)-----END (RSA )?PUBLIC KEY-----\s*$'
    );
    IF parts IS NULL OR parts[1] IS DISTINCT FROM parts[3] THEN
        RETURN NULL;
    END IF;
    der := decode(regexp_replace(parts[2], '\s', '', 'g'), 'base64');
    outer_seq := identity_der_element(der, 0);
    IF outer_seq.tag <> 48 OR outer_seq.body + outer_seq.len <> length(der) THEN
        RETURN NULL;
    END IF;
    rsa_key := outer_seq;
    IF parts[1] IS NULL THEN
        -- SubjectPublicKeyInfo: SEQUENCE { SEQUENCE { OID rsaEncryption, NULL }, BIT STRING }
        algorithm := identity_der_element(der, outer_seq.body);
        IF algorithm.tag <> 48 THEN
            RETURN NULL;
        END IF;
        oid := identity_der_element(der, algorithm.body);
        IF oid.tag <> 6 OR substring(der FROM oid.body + 1 FOR oid.len) <> '\x2a864886f70d010101'::bytea THEN
            RETURN NULL;
        END IF;
        bit_string := identity_der_element(der, algorithm.body + algorithm.len);
        IF bit_string.tag <> 3 OR get_byte(der, bit_string.body) <> 0 THEN
            RETURN NULL;
        END IF;
        rsa_key := identity_der_element(der, bit_string.body + 1);
        IF rsa_key.tag <> 48 THEN
            RETURN NULL;
        END IF;
    END IF;
    -- RSAPublicKey: SEQUENCE { INTEGER modulus, INTEGER publicExponent }
    modulus := identity_der_element(der, rsa_key.body);
    IF modulus.tag <> 2 THEN
        RETURN NULL;
    END IF;
    pos := modulus.body;
    remaining := modulus.len;
    WHILE remaining > 0 AND get_byte(der, pos) = 0 LOOP
        pos := pos + 1;
        remaining := remaining - 1;
    END LOOP;
    IF remaining = 0 THEN
        RETURN 0;
    END IF;
    RETURN (remaining - 1) * 8 + length(ltrim(get_byte(der, pos)::bit(8)::text, '0'));
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

-- ------------------------------------------------------------------ tables

CREATE TABLE communities (
    id text PRIMARY KEY
        CONSTRAINT communities_id_format CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    signed_identities text NOT NULL DEFAULT 'require'
        CONSTRAINT communities_signed_identities_values CHECK (signed_identities IN ('require', 'reject')),
    min_validity_seconds integer NOT NULL DEFAULT 3600
        CONSTRAINT communities_min_validity_seconds_range CHECK (min_validity_seconds BETWEEN 0 AND 31622400),
    leeway_seconds integer NOT NULL DEFAULT 10
        CONSTRAINT communities_leeway_seconds_range CHECK (leeway_seconds BETWEEN 0 AND 3600),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE jwt_keys (
    community_id text NOT NULL REFERENCES communities (id) ON DELETE CASCADE ON UPDATE CASCADE,
    kid text NOT NULL
        CONSTRAINT jwt_keys_kid_format CHECK (kid ~ '^[a-z0-9_]+$' AND char_length(kid) <= 64),
    alg text NOT NULL
        CONSTRAINT jwt_keys_alg_values CHECK (alg IN ('HS256', 'RS256')),
    -- HS256: the 24 characters are the HMAC key itself (DESIGN §1).
    hmac_secret text
        CONSTRAINT jwt_keys_hmac_secret_format CHECK (hmac_secret ~ '^[0-9a-f]{24}$'),
    -- RS256: one PEM RSA public key of at least 2048 bits; a private key never fits.
    rsa_public_key text
        CONSTRAINT jwt_keys_rsa_public_key_format
        CHECK (rsa_public_key IS NULL OR coalesce(identity_rsa_public_key_bits(rsa_public_key), 0) >= 2048),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, kid),
    -- V6: the algorithm follows the kind of key, and a key has exactly one kind.
    CONSTRAINT jwt_keys_alg_matches_key CHECK (
        (alg = 'HS256' AND hmac_secret IS NOT NULL AND rsa_public_key IS NULL)
        OR (alg = 'RS256' AND rsa_public_key IS NOT NULL AND hmac_secret IS NULL)
    )
);

CREATE TABLE custom_fields (
    community_id text NOT NULL REFERENCES communities (id) ON DELETE CASCADE ON UPDATE CASCADE,
    key text NOT NULL
        CONSTRAINT custom_fields_key_format CHECK (key ~ '^[a-z0-9_]{1,64}$'),
    label text NOT NULL
        CONSTRAINT custom_fields_label_length CHECK (char_length(label) BETWEEN 1 AND 255),
    regex text
        CONSTRAINT custom_fields_regex_length CHECK (char_length(regex) <= 1024),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, key)
);

CREATE TABLE mappings (
    community_id text NOT NULL REFERENCES communities (id) ON DELETE CASCADE ON UPDATE CASCADE,
    -- M2: mappings apply in ascending position; `mappings add` appends after the last.
    position integer NOT NULL
        CONSTRAINT mappings_position_range CHECK (position >= 0),
    source text NOT NULL
        CONSTRAINT mappings_source_format CHECK (source = 'uuid' OR source ~ '^extra_values\..{1,64}$'),
    target text NOT NULL
        CONSTRAINT mappings_target_format CHECK (
            target ~ '^identity_group\.(firstname|lastname|gender|company|notes|emails|home_phones|mobile_phones)$'
            OR target ~ '^custom_fields\.[a-z0-9_]{1,64}$'
        ),
    -- The custom field a `custom_fields.<key>` target names; it must be declared.
    custom_field_key text GENERATED ALWAYS AS (
        CASE WHEN target LIKE 'custom\_fields.%' THEN substr(target, 15) END
    ) STORED,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, position),
    CONSTRAINT mappings_custom_field_declared FOREIGN KEY (community_id, custom_field_key)
        REFERENCES custom_fields (community_id, key)
);

-- ------------------------------------------------------------------ notifications (C1)

-- Row triggers pass the name of the column holding the community id.
CREATE FUNCTION identity_config_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    new_id text;
    old_id text;
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('identity_config', '*');
        RETURN NULL;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_id := to_jsonb(NEW) ->> TG_ARGV[0];
        PERFORM pg_notify('identity_config', new_id);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        old_id := to_jsonb(OLD) ->> TG_ARGV[0];
        IF old_id IS DISTINCT FROM new_id THEN
            PERFORM pg_notify('identity_config', old_id);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER communities_notify AFTER INSERT OR UPDATE OR DELETE ON communities
    FOR EACH ROW EXECUTE FUNCTION identity_config_notify('id');
CREATE TRIGGER jwt_keys_notify AFTER INSERT OR UPDATE OR DELETE ON jwt_keys
    FOR EACH ROW EXECUTE FUNCTION identity_config_notify('community_id');
CREATE TRIGGER custom_fields_notify AFTER INSERT OR UPDATE OR DELETE ON custom_fields
    FOR EACH ROW EXECUTE FUNCTION identity_config_notify('community_id');
CREATE TRIGGER mappings_notify AFTER INSERT OR UPDATE OR DELETE ON mappings
    FOR EACH ROW EXECUTE FUNCTION identity_config_notify('community_id');

CREATE TRIGGER communities_notify_truncate AFTER TRUNCATE ON communities
    FOR EACH STATEMENT EXECUTE FUNCTION identity_config_notify();
CREATE TRIGGER jwt_keys_notify_truncate AFTER TRUNCATE ON jwt_keys
    FOR EACH STATEMENT EXECUTE FUNCTION identity_config_notify();
CREATE TRIGGER custom_fields_notify_truncate AFTER TRUNCATE ON custom_fields
    FOR EACH STATEMENT EXECUTE FUNCTION identity_config_notify();
CREATE TRIGGER mappings_notify_truncate AFTER TRUNCATE ON mappings
    FOR EACH STATEMENT EXECUTE FUNCTION identity_config_notify();
