/*
 * store_migrations.h - the schema migrations compiled into the binary (embed_migrations.py makes
 * store_migrations.c from migrations/NNN_name.sql). Migration i (from 0) takes the schema from
 * version i to i + 1.
 */
#ifndef SLUICE_CONTROL_STORE_MIGRATIONS_H
#define SLUICE_CONTROL_STORE_MIGRATIONS_H

struct store_migration {
	unsigned    version;
	const char *name;
	const char *sql;
};

extern const struct store_migration store_migrations[];
extern const unsigned store_migrations_count;

#endif
