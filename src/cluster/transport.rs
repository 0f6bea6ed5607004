//! ZeroMQ sockets for the cluster (to be written).
