"""psycopg session for scripts/postgres-recording/record.sh: every value is fake and greppable."""
import psycopg

DSN = "host=127.0.0.1 port=5432 dbname=shop user=postgres sslmode=prefer application_name=rec"


def schema(conn):
    with conn.cursor() as cur:
        # Several statements in one simple query (no parameters: psycopg sends a Query message).
        cur.execute("CREATE TABLE users (id int PRIMARY KEY, name text, email text);"
                    "CREATE TABLE orders (id serial PRIMARY KEY, user_id int, total numeric);"
                    "INSERT INTO users VALUES (1, 'name-literal-01', 'u1@example.test')")
    conn.commit()


def extended(conn):
    with conn.cursor() as cur:
        # Parameters: server-side binding (Parse/Bind/Describe/Execute/Sync, unnamed statement).
        for uid in range(2, 12):
            cur.execute("INSERT INTO users (id, name, email) VALUES (%s, %s, %s)",
                        (uid, f"name-param-{uid:02}", f"u{uid}@example.test"))
        cur.execute("SELECT name FROM users WHERE id = %s", (3,))
        cur.fetchall()
        # Prepared statements (named, Parse once, then Bind/Execute per call).
        for uid in range(1, 8):
            cur.execute("SELECT id, name FROM users WHERE id = %s", (uid,), prepare=True)
            cur.fetchall()
        cur.executemany("INSERT INTO orders (user_id, total) VALUES (%s, %s)",
                        [(u, f"{u}.50") for u in range(1, 6)])
    conn.commit()


def simple(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM users WHERE name LIKE 'name-param-%'")
        cur.fetchall()
        cur.execute("UPDATE users SET email = 'changed-literal-02@example.test' WHERE id = 4")
        cur.execute("SELECT 1; SELECT 'two-literal-03'; SELECT 3.5")
    conn.commit()


def failing(conn):
    with conn.cursor() as cur:
        for sql, args in (("INSERT INTO users VALUES (1, 'dup-literal-04', 'x')", None),  # 23505
                          ("SELECT * FROM no_such_table", None),                          # 42P01
                          ("SELECT 1 / %s", (0,))):                                        # 22012
            try:
                cur.execute(sql, args)
            except psycopg.Error:
                conn.rollback()


def copy(conn):
    with conn.cursor() as cur:
        with cur.copy("COPY orders (user_id, total) FROM STDIN") as cp:
            for u in range(1, 200):
                cp.write_row((u, f"{u}.25"))
        with cur.copy("COPY (SELECT id, name FROM users ORDER BY id) TO STDOUT") as cp:
            for _ in cp.rows():
                pass
    conn.commit()


def main():
    with psycopg.connect(DSN) as conn:
        schema(conn)
        extended(conn)
        simple(conn)
        failing(conn)
        copy(conn)
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("SELECT now()")
        conn.execute("SELECT name FROM users WHERE email = %s", ("u5@example.test",))


if __name__ == "__main__":
    main()
