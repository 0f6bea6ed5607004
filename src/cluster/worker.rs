//! The cluster worker (to be written).
