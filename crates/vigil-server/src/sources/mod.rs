//! Where readings come in: each source speaks one protocol and hands decoded messages to the
//! [`crate::pipeline`], acknowledging only once the pipeline says they are durable.

pub mod mllp;
pub mod mqtt;
