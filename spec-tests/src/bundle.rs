//! Busybox bundles for runtime tests (owned by the runtime test work).
