//! CONNECT: the one packet that announces its own protocol version.

use crate::error::DecodeError;
use crate::packet::{Connect, ConnectProperties, ProtocolVersion, QoS, Will, WillProperties};
use crate::properties;
use crate::wire::{Reader, malformed, protocol, sid};

use super::{check_flags, check_topic_name};

pub(super) fn decode(flags: u8, mut r: Reader) -> Result<Connect, DecodeError> {
    let name = r.binary()?;
    if name != "MQTT" && name != "MQIsdp" {
        return Err(protocol("MQTT-3.1.2-1", "protocol name is not \"MQTT\""));
    }
    let protocol_version = match r.u8()? {
        3 => ProtocolVersion::V3_1,
        4 => ProtocolVersion::V3_1_1,
        5 => ProtocolVersion::V5,
        level => return Err(DecodeError::UnsupportedProtocolVersion { level }),
    };
    let expected = if protocol_version == ProtocolVersion::V3_1 { "MQIsdp" } else { "MQTT" };
    if name != expected {
        // "MQTT" at level 3 (or "MQIsdp" at 4 or 5) names a protocol level this
        // server does not speak under that name: refuse it as such ([MQTT-3.1.2-2]).
        return Err(DecodeError::UnsupportedProtocolVersion { level: protocol_version.level() });
    }
    let v5 = protocol_version.is_v5();
    r.set_v5(v5);
    check_flags(flags, 0, v5)?;

    let connect_flags = r.u8()?;
    if connect_flags & 0x01 != 0 {
        return Err(malformed("MQTT-3.1.2-3", "reserved CONNECT flag is set"));
    }
    let clean_start = connect_flags & 0x02 != 0;
    let will_flag = connect_flags & 0x04 != 0;
    let will_qos = (connect_flags >> 3) & 0x03;
    let will_retain = connect_flags & 0x20 != 0;
    let password_flag = connect_flags & 0x40 != 0;
    let username_flag = connect_flags & 0x80 != 0;
    if !will_flag && will_qos != 0 {
        return Err(malformed(sid(v5, "MQTT-3.1.2-13", "MQTT-3.1.2-11"), "will QoS set without will flag"));
    }
    if !will_flag && will_retain {
        return Err(malformed(sid(v5, "MQTT-3.1.2-15", "MQTT-3.1.2-13"), "will retain set without will flag"));
    }
    let will_qos =
        QoS::from_u8(will_qos).ok_or_else(|| malformed(sid(v5, "MQTT-3.1.2-14", "MQTT-3.1.2-12"), "will QoS 3"))?;
    if password_flag && !username_flag && !v5 {
        return Err(malformed("MQTT-3.1.2-22", "password flag set without user name flag"));
    }
    let keep_alive = r.u16()?;
    let properties = if v5 { properties::connect(&mut r)? } else { ConnectProperties::default() };

    if r.is_empty() {
        return Err(malformed("MQTT-3.1.3-3", "CONNECT without client identifier"));
    }
    let client_id = r.string()?;

    let will = if will_flag {
        let missing = || malformed("MQTT-3.1.2-9", "will flag set but the will is missing");
        if r.is_empty() {
            return Err(missing());
        }
        let properties = if v5 { properties::will(&mut r)? } else { WillProperties::default() };
        if r.is_empty() {
            return Err(missing());
        }
        let topic = r.string()?;
        check_topic_name(&topic, false)?;
        if r.is_empty() {
            return Err(missing());
        }
        let payload = r.binary()?;
        Some(Will { topic, payload, qos: will_qos, retain: will_retain, properties })
    } else {
        None
    };

    let username = if username_flag {
        if r.is_empty() {
            let statement = sid(v5, "MQTT-3.1.2-19", "MQTT-3.1.2-17");
            return Err(malformed(statement, "user name flag set but the user name is missing"));
        }
        Some(r.string()?)
    } else {
        None
    };
    let password = if password_flag {
        if r.is_empty() {
            let statement = sid(v5, "MQTT-3.1.2-21", "MQTT-3.1.2-19");
            return Err(malformed(statement, "password flag set but the password is missing"));
        }
        Some(r.binary()?)
    } else {
        None
    };
    if !r.is_empty() {
        return Err(malformed("", "bytes after the last field the CONNECT flags announce"));
    }
    Ok(Connect { protocol: protocol_version, clean_start, keep_alive, client_id, will, username, password, properties })
}
