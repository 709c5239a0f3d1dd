# python3 sqlite3 on a file in the cwd: schema, transactions, rollback, aggregate, reopen
python3 - <<'PY'
import sqlite3
con = sqlite3.connect("test.db")
con.execute("PRAGMA journal_mode=DELETE")
con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL)")
with con:
    con.executemany("INSERT INTO t (name, score) VALUES (?, ?)",
                    [("n%03d" % i, i * 1.5) for i in range(500)])
try:
    with con:
        con.execute("INSERT INTO t (name, score) VALUES ('doomed', 1)")
        con.execute("INSERT INTO t (name, score) VALUES (NULL, 2)")
except sqlite3.IntegrityError as e:
    print("rolled back:", e)
print(con.execute("SELECT count(*), sum(score), max(name) FROM t").fetchone())
con.execute("CREATE INDEX idx ON t(score)")
print(con.execute("SELECT name FROM t WHERE score BETWEEN 100 AND 106 ORDER BY score DESC").fetchall())
con.commit(); con.close()
con = sqlite3.connect("test.db")
print("reopened:", con.execute("SELECT count(*) FROM t WHERE name LIKE 'n4%'").fetchone()[0])
print(con.execute("PRAGMA integrity_check").fetchone()[0])
con.execute("PRAGMA journal_mode=WAL")
with con:
    con.execute("UPDATE t SET score = -1 WHERE id % 100 = 0")
print("wal update:", con.execute("SELECT count(*) FROM t WHERE score < 0").fetchone()[0])
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.execute("PRAGMA journal_mode=DELETE")
con.close()
print(sqlite3.connect(":memory:").execute("SELECT upper('ok'), 7 * 6").fetchone())
PY
ls
rm -f test.db
