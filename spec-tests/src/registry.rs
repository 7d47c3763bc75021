//! A local docker-registry on 127.0.0.1 for image tests (owned by the imgtool work).
