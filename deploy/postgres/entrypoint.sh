#!/bin/sh
# First start: initdb on the (empty) data volume with the role, password and database
# named by the pgpass line in $POSTGRES_PASSFILE (host:port:database:user:password), the
# same file the workers read through PGPASSFILE. Every start: run the server in the
# foreground (SIGINT from `docker stop` is PostgreSQL's fast shutdown).
set -eu
: "${POSTGRES_PASSFILE:?POSTGRES_PASSFILE must name the pgpass secret}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    IFS=: read -r _ _ database user password <"$POSTGRES_PASSFILE"
    pwfile=$(mktemp)
    printf '%s\n' "$password" >"$pwfile"
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "CREATE DATABASE \"$database\" OWNER \"$user\";" \
        | postgres --single -D "$PGDATA" -j postgres >/dev/null
    echo "postgres-entrypoint: initialised $PGDATA (database $database, role $user)"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
