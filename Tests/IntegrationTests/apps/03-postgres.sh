# PostgreSQL 15: initdb, pg_ctl start, psql with 5000 rows (insert, index,
# update, aggregate, join), pg_ctl stop; the server runs as postgres.
set -eu
bin=/usr/lib/postgresql/15/bin
mkdir -p /tmp/pg && chown postgres:postgres /tmp/pg
as_pg() { runuser -u postgres -- "$@"; }
as_pg $bin/initdb -D /tmp/pg/data -A trust -E UTF8 --locale=C >/tmp/pg/initdb.log 2>&1 && echo "initdb: ok"
as_pg $bin/pg_ctl -D /tmp/pg/data -l /tmp/pg/server.log -w -o "-k /tmp/pg -c listen_addresses=''" start >/dev/null && echo "started"
q() { psql -X -q -t -A -h /tmp/pg -U postgres -d postgres -c "$1"; }
q "create table t (id int primary key, name text, grp int)"
q "insert into t select i, 'name-' || i, i % 17 from generate_series(1, 5000) i"
q "create index t_grp on t (grp)"
q "update t set name = upper(name) where id % 3 = 0"
q "delete from t where id % 11 = 0"
q "select count(*), sum(id), md5(string_agg(name, ',' order by id)) from t"
q "select grp, count(*) from t where grp < 4 group by grp order by grp"
q "create table g (grp int, label text); insert into g select i, 'group ' || i from generate_series(0, 16) i"
q "select g.label, count(*) from t join g using (grp) group by g.label order by 2 desc, 1 limit 3"
q "vacuum analyze t"
q "select relname, reltuples from pg_class where relname = 't'"
as_pg $bin/pg_ctl -D /tmp/pg/data -m fast -w stop >/dev/null && echo "stopped"
