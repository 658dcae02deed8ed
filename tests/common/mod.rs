//! Helpers shared by the end-to-end tests (compile with the real wasmc binary, run).
