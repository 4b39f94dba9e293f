//! The CLI's own hints on engine errors. The engine's messages say what to
//! do in its terms ("replace it with `force`"); where one of this program's
//! flags or commands is the fix, the CLI names it here.

use std::error::Error;

use swarm_engine::api::{ClientError, OpError};
use swarm_engine::node::{FetchError, NodeError, NodeOpError};
use swarm_engine::release::{PolicyError, ReleaseError};
use swarm_engine::store::{
    AcceptError, AddError, ExportError, OpenError, PublishError, ReadError, StoreError,
};

const CHECK: &str = "run `swarm check`";

/// `e`'s message, chain included, with the hint for the first error in the
/// chain that has one.
pub(crate) fn message(e: &anyhow::Error) -> String {
    with_hint(format!("{e:#}"), e.chain().find_map(hint))
}

/// An error's message, chain included, with the hint for the first error
/// in the chain that has one: what a running node's API replies.
pub(crate) fn describe_chain(e: &(dyn Error + 'static)) -> String {
    let mut found = hint(e);
    let mut next = e.source();
    while let (None, Some(s)) = (&found, next) {
        found = hint(s);
        next = s.source();
    }
    with_hint(swarm_engine::error_chain(e), found)
}

fn with_hint(mut msg: String, hint: Option<String>) -> String {
    if let Some(h) = hint {
        msg.push_str("; ");
        msg.push_str(&h);
    }
    msg
}

/// The hint for one error of a chain. The engine's `transparent` wrappers
/// forward both the message and the source of what they wrap, so the inner
/// error is not in the chain itself: each wrapper is looked through here.
fn hint(e: &(dyn Error + 'static)) -> Option<String> {
    if let Some(e) = e.downcast_ref::<FetchError>() {
        fetch(e)
    } else if let Some(e) = e.downcast_ref::<ExportError>() {
        export(e)
    } else if let Some(e) = e.downcast_ref::<ReadError>() {
        read(e)
    } else if let Some(e) = e.downcast_ref::<StoreError>() {
        store(e)
    } else if let Some(e) = e.downcast_ref::<OpenError>() {
        open(e)
    } else if let Some(e) = e.downcast_ref::<AcceptError>() {
        accept(e)
    } else if let Some(e) = e.downcast_ref::<PolicyError>() {
        policy(e)
    } else if let Some(e) = e.downcast_ref::<ReleaseError>() {
        release(e)
    } else if let Some(e) = e.downcast_ref::<PublishError>() {
        publish(e)
    } else if let Some(e) = e.downcast_ref::<AddError>() {
        add(e)
    } else if let Some(e) = e.downcast_ref::<OpError>() {
        match e {
            OpError::NotPinned(_) | OpError::NoSuchRoot(_) => Some("see `swarm ls`".into()),
            OpError::NotTrusted(_) => Some("see `swarm trust ls`".into()),
            OpError::BadKey(e) | OpError::BadToken(e) => release(e),
            OpError::Export(e) => export(e),
            OpError::Fetch(e) => fetch(e),
            OpError::Refused(e) => accept(e),
            OpError::Publish(e) => publish(e),
            OpError::Add(e) => add(e),
            OpError::Read(e) => read(e),
            OpError::Store(e) => store(e),
            _ => None,
        }
    } else if let Some(e) = e.downcast_ref::<ClientError>() {
        match e {
            ClientError::NotRunning { .. } => {
                Some("start one with `swarm node`, or wait until it is up".into())
            }
            _ => None,
        }
    } else if let Some(e) = e.downcast_ref::<NodeError>() {
        match e {
            NodeError::Open(e) => open(e),
            _ => None,
        }
    } else if let Some(e) = e.downcast_ref::<NodeOpError>() {
        match e {
            NodeOpError::Add(e) => add(e),
            NodeOpError::Publish(e) => publish(e),
            NodeOpError::Read(e) => read(e),
            NodeOpError::Refused(e) => accept(e),
            NodeOpError::Store(e) => store(e),
            _ => None,
        }
    } else {
        None
    }
}

fn fetch(e: &FetchError) -> Option<String> {
    match e {
        FetchError::NoPeers => Some(format!(
            "pass a ticket (`swarm share` prints one), --peer HOST:PORT or --mirror URL; or \
             {} to look the root up there",
            crate::dht::how_to_enable()
        )),
        FetchError::NoneFound => Some(
            "nobody has announced it; pass a ticket (`swarm share` prints one), --peer \
             HOST:PORT or --mirror URL"
                .into(),
        ),
        FetchError::Store(e) => store(e),
        _ => None,
    }
}

fn export(e: &ExportError) -> Option<String> {
    match e {
        ExportError::Exists(_) => Some("pass --force to replace it".into()),
        ExportError::Corrupt { .. } => Some(CHECK.into()),
        ExportError::Read(e) => read(e),
        _ => None,
    }
}

fn read(e: &ReadError) -> Option<String> {
    match e {
        ReadError::Corrupt(_) => Some(CHECK.into()),
        ReadError::Store(e) => store(e),
        _ => None,
    }
}

fn store(e: &StoreError) -> Option<String> {
    match e {
        StoreError::BadRecord(_) => Some(CHECK.into()),
        _ => None,
    }
}

fn open(e: &OpenError) -> Option<String> {
    match e {
        OpenError::Locked(_) => Some("pass --store DIR to use another".into()),
        _ => None,
    }
}

fn accept(e: &AcceptError) -> Option<String> {
    match e {
        AcceptError::Policy(e) => policy(e),
        AcceptError::Store(e) => store(e),
        _ => None,
    }
}

fn policy(e: &PolicyError) -> Option<String> {
    match e {
        PolicyError::Untrusted { publisher, .. } => Some(format!(
            "run `swarm trust add {publisher}` or pass --trust {publisher}"
        )),
        _ => None,
    }
}

fn release(e: &ReleaseError) -> Option<String> {
    match e {
        ReleaseError::BadKey(_) => Some("`swarm keygen` prints one".into()),
        ReleaseError::SecretGivenAsPublic => {
            Some("`swarm keygen` printed it when it wrote the key file".into())
        }
        ReleaseError::BadSecretKey => Some("`swarm keygen` writes one".into()),
        _ => None,
    }
}

fn publish(e: &PublishError) -> Option<String> {
    match e {
        PublishError::Release(e) => release(e),
        PublishError::Add(e) => add(e),
        PublishError::Accept(e) => accept(e),
        PublishError::Store(e) => store(e),
        _ => None,
    }
}

fn add(e: &AddError) -> Option<String> {
    match e {
        AddError::Store(e) => store(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use swarm_engine::Hash;
    use swarm_engine::release::SecretKey;

    use super::*;

    #[test]
    fn the_hint_follows_the_engine_message_through_context_and_wrappers() {
        let exists = anyhow::Error::from(ExportError::Exists(PathBuf::from("/tmp/out")))
            .context("cannot export");
        let msg = message(&exists);
        assert!(
            msg.starts_with("cannot export: /tmp/out already exists"),
            "{msg}"
        );
        assert!(msg.ends_with("; pass --force to replace it"), "{msg}");

        let hash = Hash::of(b"x");
        let deep = ExportError::Read(ReadError::Store(StoreError::BadRecord(hash)));
        assert!(message(&deep.into()).ends_with("; run `swarm check`"));

        let publisher = SecretKey::from_seed(&[3; 32]).public();
        let untrusted = NodeOpError::Refused(AcceptError::Policy(PolicyError::Untrusted {
            publisher,
            name: "app".into(),
        }));
        let msg = describe_chain(&untrusted);
        assert!(
            msg.ends_with(&format!(
                "run `swarm trust add {publisher}` or pass --trust {publisher}"
            )),
            "{msg}"
        );

        let plain = anyhow::anyhow!("something else");
        assert_eq!(message(&plain), "something else");
        assert_eq!(
            message(&FetchError::NoPeers.into())
                .matches("--peer")
                .count(),
            1
        );
    }
}
