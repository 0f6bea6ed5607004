//! The Lua state per shard: placeholder until written.
