//! Devices' engines joined by perfect wires, one per link, with a clock that moves only when
//! told: each device's events are collected per link, in order.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use acm_engine::EngineConfig;
use acm_engine::device::{DeviceEngine, DeviceEvent, LinkId, RoutedRequest, SessionId};
use acm_transport::Role;
use acm_wire::pb;

pub const BUNDLE: &str = "com.example";

/// The app `BUNDLE/entry/EntryAbility` on `device`, for `service`.
pub fn app(device: &str, service: &str) -> pb::PeerInfo {
    pb::PeerInfo {
        device_id: device.into(),
        bundle_name: BUNDLE.into(),
        module_name: "entry".into(),
        ability_name: "EntryAbility".into(),
        service_name: service.into(),
    }
}

/// One wire: a link of device `a` joined to a link of device `b`.
#[derive(Debug, Clone, Copy)]
pub struct Wire {
    pub a: usize,
    pub a_link: LinkId,
    pub b: usize,
    pub b_link: LinkId,
    /// Frames no longer cross (a link that lost its way).
    pub cut: bool,
}

pub struct Net {
    pub now: Instant,
    pub names: Vec<String>,
    pub devices: Vec<DeviceEngine>,
    pub wires: Vec<Wire>,
    /// Each device's events, by link, in order.
    pub events: Vec<BTreeMap<LinkId, Vec<DeviceEvent>>>,
    /// Frames that crossed.
    pub frames: u64,
}

impl Net {
    pub fn new(names: &[&str]) -> Self {
        Self::with(names, EngineConfig::default())
    }

    pub fn with(names: &[&str], config: EngineConfig) -> Self {
        Self {
            now: Instant::now(),
            names: names.iter().map(|n| n.to_string()).collect(),
            devices: names
                .iter()
                .map(|name| DeviceEngine::new(*name, config))
                .collect(),
            wires: Vec::new(),
            events: names.iter().map(|_| BTreeMap::new()).collect(),
            frames: 0,
        }
    }

    pub fn index(&self, name: &str) -> usize {
        self.names.iter().position(|n| n == name).expect("a device")
    }

    /// `dialer` dials `acceptor`: a new wire, not pumped yet. Returns (dialer's link,
    /// acceptor's link).
    pub fn dial(&mut self, dialer: &str, acceptor: &str) -> (LinkId, LinkId) {
        let (a, b) = (self.index(dialer), self.index(acceptor));
        let nonce = [self.wires.len() as u8; 16];
        let a_link = self.devices[a].add_link(self.now, Role::Dialer, acceptor, 65_535, nonce);
        let b_link = self.devices[b].add_link(self.now, Role::Acceptor, dialer, 65_535, nonce);
        self.wires.push(Wire {
            a,
            a_link,
            b,
            b_link,
            cut: false,
        });
        (a_link, b_link)
    }

    /// `dialer` dials `acceptor` and the link comes up; the events of both devices so far are
    /// dropped (their `LinkUp` among them).
    pub fn link(&mut self, dialer: &str, acceptor: &str) -> (LinkId, LinkId) {
        let links = self.dial(dialer, acceptor);
        self.pump();
        assert!(self.devices[self.index(dialer)].is_up(links.0));
        self.take(dialer);
        self.take(acceptor);
        links
    }

    /// Moves frames along every wire until none is left, collecting events.
    pub fn pump(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.wires.len() {
                let wire = self.wires[i];
                if wire.cut {
                    continue;
                }
                for (from, from_link, to, to_link) in [
                    (wire.a, wire.a_link, wire.b, wire.b_link),
                    (wire.b, wire.b_link, wire.a, wire.a_link),
                ] {
                    while let Some(frame) = self.devices[from].poll_transmit(from_link, self.now) {
                        self.devices[to].handle_message(to_link, self.now, frame);
                        self.frames += 1;
                        moved = true;
                    }
                }
            }
            self.collect();
            if !moved {
                return;
            }
        }
    }

    /// Takes every device's events into `events`.
    pub fn collect(&mut self) {
        for (d, device) in self.devices.iter_mut().enumerate() {
            let links: Vec<LinkId> = device.link_ids().collect();
            for link in links {
                while let Some(event) = device.poll_event(link) {
                    self.events[d].entry(link).or_default().push(event);
                }
            }
        }
    }

    /// Takes the events device `name` collected, on all its links, in link order.
    pub fn take(&mut self, name: &str) -> Vec<DeviceEvent> {
        let d = self.index(name);
        std::mem::take(&mut self.events[d])
            .into_values()
            .flatten()
            .collect()
    }

    /// Moves the clock by `by` and runs every due deadline, then pumps.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        for device in &mut self.devices {
            let links: Vec<LinkId> = device.link_ids().collect();
            for link in links {
                if device.poll_timeout(link).is_some_and(|due| due <= self.now) {
                    device.handle_timeout(link, self.now);
                }
            }
        }
        self.pump();
    }

    pub fn device(&mut self, name: &str) -> &mut DeviceEngine {
        let d = self.index(name);
        &mut self.devices[d]
    }

    /// A new session of device `from`'s app with `to`'s, for `service`.
    pub fn session(&mut self, from: &str, to: &str, service: &str) -> SessionId {
        self.device(from).create_session(
            app(from, service),
            app(to, service),
            pb::ConnectOptions::default(),
        )
    }

    /// `from` connects `session` with `token` and everything is pumped.
    pub fn connect(&mut self, from: &str, session: SessionId, token: u8) -> LinkId {
        let now = self.now;
        let link = self
            .device(from)
            .connect(session, [token; 16], now)
            .expect("the connect is sent")
            .0;
        self.pump();
        link
    }

    /// The requests routed to `name`'s apps among `events`.
    pub fn requests(events: &[DeviceEvent]) -> Vec<RoutedRequest> {
        events
            .iter()
            .filter_map(|e| match e {
                DeviceEvent::IncomingRequest(r) => Some((**r).clone()),
                _ => None,
            })
            .collect()
    }

    /// `name`'s app accepts `request` with a new session of its own; pumps.
    pub fn accept(&mut self, name: &str, request: &RoutedRequest) -> SessionId {
        let now = self.now;
        let device = self.device(name);
        let session = device.create_session(
            app(name, &request.source.service_name),
            request.source.clone(),
            request.options.clone(),
        );
        device
            .accept(session, &request.token, BUNDLE, now)
            .expect("the request is accepted");
        self.pump();
        session
    }
}
