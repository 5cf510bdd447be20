//! Thin adapters that implement `engine::LogSource` over each driver.

pub mod mysql;
pub mod postgres;
