-- 001_initial: every object of the control store (issue 16, item 1). Times are Unix seconds.
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE cluster (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT INTO cluster (id, version) VALUES (1, 0);

CREATE TABLE domains (
	name          TEXT PRIMARY KEY,
	route         TEXT NOT NULL,
	tls           TEXT,
	tls_verify    INTEGER,
	spool_quota   TEXT,
	long_lines    TEXT,
	allow_routing INTEGER,
	created       INTEGER NOT NULL,
	updated       INTEGER NOT NULL
);
CREATE TABLE domain_policy (
	domain TEXT NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
	key    TEXT NOT NULL,
	value  TEXT NOT NULL,
	PRIMARY KEY (domain, key)
);

CREATE TABLE rulesets (
	name        TEXT PRIMARY KEY,
	text        TEXT NOT NULL,
	sha256      TEXT NOT NULL,
	uploaded_by TEXT NOT NULL,
	uploaded_at INTEGER NOT NULL
);

CREATE TABLE users (
	name    TEXT PRIMARY KEY,
	pwhash  TEXT,
	role    TEXT NOT NULL CHECK (role IN ('superadmin', 'domainadmin', 'enduser')),
	created INTEGER NOT NULL
);
CREATE TABLE user_domains (
	user   TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
	domain TEXT NOT NULL,
	PRIMARY KEY (user, domain)
);
CREATE TABLE user_addresses (
	user    TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
	address TEXT NOT NULL,
	PRIMARY KEY (user, address)
);

CREATE TABLE tokens (
	id          INTEGER PRIMARY KEY,
	user        TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
	hash        TEXT NOT NULL UNIQUE,
	kind        TEXT NOT NULL CHECK (kind IN ('api', 'session')),
	description TEXT NOT NULL DEFAULT '',
	created     INTEGER NOT NULL,
	expires     INTEGER NOT NULL,
	revoked     INTEGER NOT NULL DEFAULT 0,
	last_used   INTEGER
);

CREATE TABLE nodes (
	name            TEXT PRIMARY KEY,
	site            TEXT NOT NULL,
	fingerprint     TEXT,
	last_seen       INTEGER,
	version         TEXT,
	applied_version INTEGER,
	created         INTEGER NOT NULL
);
CREATE TABLE node_listen (
	node     TEXT NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
	label    TEXT NOT NULL,
	address  TEXT NOT NULL,
	role     TEXT NOT NULL CHECK (role IN ('primary', 'fallback')),
	starttls INTEGER,
	PRIMARY KEY (node, label)
);
CREATE TABLE roles (
	role TEXT PRIMARY KEY CHECK (role IN ('log', 'quarantine', 'archive')),
	node TEXT NOT NULL REFERENCES nodes (name)
);
CREATE TABLE join_tokens (
	id      INTEGER PRIMARY KEY,
	node    TEXT NOT NULL,
	site    TEXT NOT NULL,
	hash    TEXT NOT NULL UNIQUE,
	created INTEGER NOT NULL,
	expires INTEGER NOT NULL,
	used    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE audit (
	id      INTEGER PRIMARY KEY,
	at      INTEGER NOT NULL,
	actor   TEXT NOT NULL,
	action  TEXT NOT NULL,
	object  TEXT NOT NULL,
	before  TEXT,
	after   TEXT,
	address TEXT NOT NULL,
	version INTEGER NOT NULL
);

-- What the publisher (control/sync) sends to the KV bucket, in seq order: value NULL deletes.
CREATE TABLE outbox (
	seq     INTEGER PRIMARY KEY,
	version INTEGER NOT NULL,
	key     TEXT NOT NULL,
	value   TEXT
);
