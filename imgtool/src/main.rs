//! `imgtool`: pulls OCI images into a local store and unpacks them into runtime bundles.
//! Not implemented yet (tracked in the imgtool issues): the binary says so and fails, so
//! no script can mistake it for a working tool.

fn main() {
    eprintln!(
        "imgtool: not implemented yet (pull, bundle and the store are tracked as open issues)"
    );
    std::process::exit(1);
}
