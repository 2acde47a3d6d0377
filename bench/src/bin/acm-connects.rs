//! Runs exactly N connects (argument 1, default 1000) between two devices over the mock
//! transport on a single-threaded runtime, each until its ConnectResult, and nothing else: a
//! deterministic workload for counting instructions per connect under callgrind. Run it twice
//! with different N; the difference of the totals divided by the difference of N is the cost
//! of one connect, without the set-up:
//!
//! ```sh
//! cargo build --release -p acm-bench
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.1000 target/release/acm-connects 1000
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.2000 target/release/acm-connects 2000
//! ```

use acm::transport::DeviceId;
use acm::{
    CollaborateRequest, CollaborateResult, ConnectOptions, Context, Device, DeviceConfig, PeerInfo,
    Security,
};
use acm_transport_mock::MockNetwork;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(1000, |arg| arg.parse().expect("N is a number"));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run(n));
}

async fn run(n: u64) {
    // Plain links: the count is the protocol stack's, as it was before links were secured.
    let config = || DeviceConfig::default().with_security(Security::Insecure);
    let network = MockNetwork::new(3);
    let id = |name: &str| DeviceId::new(name).expect("a valid id");
    let phone = Device::new(network.add_device(id("phone")).expect("a device"), config());
    let tablet = Device::new(
        network.add_device(id("tablet")).expect("a device"),
        config(),
    );
    let context = Context::new("com.example.count", "entry", "EntryAbility");
    let on_phone = phone.manager(&context);
    let on_tablet = tablet.manager(&context);
    let (manager, ctx) = (on_tablet.clone(), context.clone());
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    on_tablet.register_ability(
        "entry",
        "EntryAbility",
        move |request: CollaborateRequest| {
            let service = request.peer_info.service_name.clone();
            let session = manager
                .create_ability_connection_session(
                    &service,
                    &ctx,
                    request.peer_info,
                    request.connect_options,
                )
                .expect("a valid request");
            drop(manager.accept_connect(session, &request.token));
            let _ = accepted_tx.send(session);
            CollaborateResult::Accept
        },
    );
    let peer = PeerInfo::new("tablet", "com.example.count", "entry", "EntryAbility");
    for i in 0..n {
        let session = on_phone
            .create_ability_connection_session(
                &format!("s{i}"),
                &context,
                peer.clone(),
                ConnectOptions::default(),
            )
            .expect("a valid session");
        let result = on_phone.connect(session).await.expect("a known session");
        assert!(result.is_connected, "{result:?}");
        on_phone
            .destroy_ability_connection_session(session)
            .expect("a known session");
        let theirs = accepted.recv().await.expect("the tablet accepted");
        on_tablet
            .destroy_ability_connection_session(theirs)
            .expect("a known session");
    }
    phone.close().await;
    tablet.close().await;
}
