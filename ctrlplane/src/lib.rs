//! rvs control plane.
