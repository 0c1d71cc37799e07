#!/bin/sh
# PostgreSQL for the cluster demo (docker/compose.cluster.yaml), from Debian's packages: a data
# directory in the volume, made on the first start with the `rampart` role and database and the
# password from POSTGRES_PASSWORD, then the server listening on the compose network with
# password (SCRAM) authentication. Runs as root only to set up; the server runs as `postgres`.
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
data=/var/lib/postgresql/data
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
install -d -o postgres -g postgres -m 700 "$data"
install -d -o postgres -g postgres /run/postgresql
if [ ! -s "$data/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    chown postgres "$pwfile"
    as_postgres "$bin/initdb" -D "$data" -U rampart --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8
    rm -f "$pwfile"
    echo "host all all 0.0.0.0/0 scram-sha-256" >> "$data/pg_hba.conf"
    as_postgres "$bin/pg_ctl" -D "$data" -o "-c listen_addresses=''" -w start
    as_postgres "$bin/createdb" -U rampart rampart
    as_postgres "$bin/pg_ctl" -D "$data" -m fast -w stop
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups \
    "$bin/postgres" -D "$data" -c listen_addresses='*'
