"""Mini PG: a test-only PG written from docs/adding_a_pg.rst (a gateway and its sandbox emulator)."""
