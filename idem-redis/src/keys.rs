//! The Redis keys of one store key: `<prefix>:{<namespace>:<key>}:<part>`.

use idem::store::StoreKey;

/// The three Redis keys of one idem key. They differ only in their last
/// character, after the hash tag, so they always share a cluster slot.
#[derive(Debug)]
pub(crate) struct Keys {
    /// The completed record.
    pub(crate) record: String,
    /// The live lease.
    pub(crate) lease: String,
    /// The last fencing token issued.
    pub(crate) fence: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str, key: StoreKey<'_>) -> Self {
        let base = base(prefix, key);
        Self {
            record: format!("{base}r"),
            lease: format!("{base}l"),
            fence: format!("{base}f"),
        }
    }
}

/// Everything but the part letter: `<prefix>:{<namespace>:<key>}:`.
///
/// The namespace has its `%` and `:` percent-encoded, so the first `:`
/// inside the braces ends it and two different (namespace, key) pairs never
/// share a string. The key is written as is: it runs to the `}:` two
/// characters before the end. Braces in a namespace or key only narrow the
/// hash tag (Redis hashes up to the first `}`), which moves the key to
/// another slot but never separates its three keys.
fn base(prefix: &str, key: StoreKey<'_>) -> String {
    let mut s = String::with_capacity(prefix.len() + key.namespace.len() + key.key.len() + 8);
    s.push_str(prefix);
    s.push_str(":{");
    for c in key.namespace.chars() {
        match c {
            '%' => s.push_str("%25"),
            ':' => s.push_str("%3A"),
            c => s.push(c),
        }
    }
    s.push(':');
    s.push_str(key.key);
    s.push_str("}:");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ns: &str, key: &str) -> Keys {
        Keys::new("idem", StoreKey { namespace: ns, key })
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let k = keys("payments", "order-7");
        assert_eq!(k.record, "idem:{payments:order-7}:r");
        assert_eq!(k.lease, "idem:{payments:order-7}:l");
        assert_eq!(k.fence, "idem:{payments:order-7}:f");
    }

    #[test]
    fn colons_in_namespaces_do_not_collide_with_keys() {
        assert_ne!(keys("a:b", "c").record, keys("a", "b:c").record);
        assert_eq!(keys("a:b", "c").record, "idem:{a%3Ab:c}:r");
        assert_ne!(keys("a%3Ab", "c").record, keys("a:b", "c").record);
    }
}
