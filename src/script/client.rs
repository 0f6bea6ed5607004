//! `self.client` and the response object: placeholder until written.
