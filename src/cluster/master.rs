//! The cluster master (to be written).
