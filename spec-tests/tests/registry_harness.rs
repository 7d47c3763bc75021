//! The registry harness itself: it starts, serves the v2 API, enforces auth when asked,
//! and is gone after drop.

use spec_tests::registry::{http_status, Registry};

#[test]
fn anonymous_registry_serves_v2_and_stops_on_drop() {
    let reg = Registry::start();
    let port = reg.port();
    assert_eq!(http_status(port, "/v2/"), Some(200));
    drop(reg);
    assert_eq!(
        http_status(port, "/v2/"),
        None,
        "registry still answering after drop"
    );
}

#[test]
fn auth_registry_demands_credentials() {
    let reg = Registry::start_with_auth("alice", "s3cret");
    assert_eq!(http_status(reg.port(), "/v2/"), Some(401));
}
