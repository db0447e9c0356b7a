//! `[listeners]` from TOML: the split of each kind's table into its own keys
//! (the listener named `default`) and named sub-tables, done by hand rather
//! than with `serde(untagged)` or `flatten`, which buffer the values and so
//! lose toml's line and key in errors.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};

use super::{
    DEFAULT_NAME, ListenerKind, ListenersConfig, QuicListenerConfig, TcpListenerConfig, TlsListenerConfig,
    WsListenerConfig, WssListenerConfig,
};

/// Longest listener name, in bytes (it appears in logs and `TransportInfo`).
const NAME_LEN_MAX: usize = 64;

impl<'de> Deserialize<'de> for ListenersConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ListenersVisitor)
    }
}

struct ListenersVisitor;

impl<'de> Visitor<'de> for ListenersVisitor {
    type Value = ListenersConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of listener kinds (tcp, tls, ws, wss, quic)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = ListenersConfig::default();
        // An unknown kind fails in `next_key`, so toml points at it.
        while let Some(kind) = map.next_key::<ListenerKind>()? {
            match kind {
                ListenerKind::Tcp => {
                    let (default, named) = map.next_value_seed(KindSeed::<TcpListenerConfig>::new(kind))?;
                    out.tcp = default.unwrap_or_default();
                    out.named.tcp = named;
                }
                ListenerKind::Tls => {
                    (out.tls, out.named.tls) = map.next_value_seed(KindSeed::<TlsListenerConfig>::new(kind))?;
                }
                ListenerKind::Ws => {
                    (out.ws, out.named.ws) = map.next_value_seed(KindSeed::<WsListenerConfig>::new(kind))?;
                }
                ListenerKind::Wss => {
                    (out.wss, out.named.wss) = map.next_value_seed(KindSeed::<WssListenerConfig>::new(kind))?;
                }
                ListenerKind::Quic => {
                    (out.quic, out.named.quic) = map.next_value_seed(KindSeed::<QuicListenerConfig>::new(kind))?;
                }
            }
        }
        Ok(out)
    }
}

/// Reads one `[listeners.KIND]` table: its own keys (the options of `T`) make
/// the default listener, each sub-table a named one.
struct KindSeed<T> {
    kind: ListenerKind,
    listener: PhantomData<T>,
}

impl<T> KindSeed<T> {
    fn new(kind: ListenerKind) -> Self {
        Self { kind, listener: PhantomData }
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for KindSeed<T> {
    type Value = (Option<T>, BTreeMap<String, T>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for KindSeed<T> {
    type Value = (Option<T>, BTreeMap<String, T>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a [listeners.{}] table", self.kind)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let mut split = Split {
            map,
            kind: self.kind,
            options: struct_fields::<T>(),
            named: BTreeMap::new(),
            own_keys: 0,
            named_failed: false,
        };
        let default = match T::deserialize(MapAccessDeserializer::new(&mut split)) {
            Ok(listener) if split.own_keys > 0 || self.kind == ListenerKind::Tcp => Some(listener),
            Ok(_) => None,
            Err(error) if split.named_failed || split.own_keys > 0 => return Err(error),
            // Only named tables: the missing required keys were the default listener's, which is absent.
            Err(_) => None,
        };
        let mut named = split.named;
        let default = match named.remove(DEFAULT_NAME) {
            Some(_) if split.own_keys > 0 => {
                return Err(de::Error::custom(format!(
                    "[listeners.{kind}] has keys of its own and a [listeners.{kind}.default] table: \
                     both configure the listener named default",
                    kind = self.kind
                )));
            }
            Some(listener) => Some(listener),
            None => default,
        };
        Ok((default, named))
    }
}

/// The map `T` deserializes from: the kind's table with the named sub-tables
/// taken out (into `named`) as they go by.
struct Split<A, T> {
    map: A,
    kind: ListenerKind,
    /// `T`'s keys.
    options: &'static [&'static str],
    named: BTreeMap<String, T>,
    own_keys: usize,
    /// A named listener failed: its error, not a missing default key, is the one to report.
    named_failed: bool,
}

impl<'de, A: MapAccess<'de>, T: Deserialize<'de>> MapAccess<'de> for Split<A, T> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        while let Some(key) = self.map.next_key::<String>()? {
            if self.options.contains(&key.as_str()) {
                self.own_keys += 1;
                return seed.deserialize(key.into_deserializer()).map(Some);
            }
            let seed = NamedSeed { kind: self.kind, name: &key, options: self.options, listener: PhantomData };
            match self.map.next_value_seed(seed) {
                Ok(listener) => {
                    self.named.insert(key, listener);
                }
                Err(error) => {
                    self.named_failed = true;
                    return Err(error);
                }
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        self.map.next_value_seed(seed)
    }
}

/// One `[listeners.KIND.NAME]` table; anything but a table under a key that is
/// not an option is reported as an unknown key.
struct NamedSeed<'k, T> {
    kind: ListenerKind,
    name: &'k str,
    options: &'static [&'static str],
    listener: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for NamedSeed<'_, T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for NamedSeed<'_, T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{name}` to be a [listeners.{kind}.{name}] table, as it is not a key of [listeners.{kind}] ({})",
            self.options.join(", "),
            name = self.name,
            kind = self.kind
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        if self.name.is_empty() || self.name.len() > NAME_LEN_MAX || !self.name.bytes().all(valid) {
            return Err(de::Error::custom(format!(
                "[listeners.{}.{}]: a listener name is 1 to {NAME_LEN_MAX} letters, digits, '_' or '-'",
                self.kind, self.name
            )));
        }
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

/// The keys of a struct deriving `Deserialize`, as serde's derive lists them:
/// the derive passes them to `deserialize_struct`, where this probe reads them.
pub(super) fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}
