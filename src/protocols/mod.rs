pub mod dns;
pub mod postgres;
pub mod redis;
pub mod tls;
