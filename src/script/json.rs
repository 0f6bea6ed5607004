//! `locusta.json`: placeholder until written.
