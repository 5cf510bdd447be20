//! PostgreSQL driver for instarec.
