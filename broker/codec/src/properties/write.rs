//! Writing MQTT 5 property blocks.

use bytes::Bytes;
use bytestring::ByteString;

use super::*;
use crate::error::EncodeError;
use crate::packet::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties, PublishProperties,
    SubscribeProperties, UserProperty, WillProperties,
};
use crate::wire::{Counter, Sink};

/// A property block: written twice, once to measure its length prefix.
pub(crate) trait WriteProps {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError>;
}

/// Writes the property length and then the properties.
pub(crate) fn put<S: Sink, P: WriteProps>(s: &mut S, props: &P) -> Result<(), EncodeError> {
    let mut counter = Counter(0);
    props.write(&mut counter)?;
    s.put_varint(counter.0)?;
    props.write(s)
}

fn byte<S: Sink>(s: &mut S, id: u8, v: Option<u8>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_u8(v);
    }
}

fn boolean<S: Sink>(s: &mut S, id: u8, v: Option<bool>) {
    byte(s, id, v.map(u8::from));
}

fn two<S: Sink>(s: &mut S, id: u8, v: Option<u16>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_u16(v);
    }
}

fn four<S: Sink>(s: &mut S, id: u8, v: Option<u32>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_u32(v);
    }
}

fn string<S: Sink>(s: &mut S, id: u8, v: Option<&ByteString>) -> Result<(), EncodeError> {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_str(v)?;
    }
    Ok(())
}

fn binary<S: Sink>(s: &mut S, id: u8, v: Option<&Bytes>) -> Result<(), EncodeError> {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_binary(v)?;
    }
    Ok(())
}

fn subscription_id<S: Sink>(s: &mut S, id: u32) -> Result<(), EncodeError> {
    s.put_u8(SUBSCRIPTION_IDENTIFIER);
    let id = usize::try_from(id).map_err(|_| EncodeError::Invalid("subscription identifier above 268,435,455"))?;
    s.put_varint(id).map_err(|_| EncodeError::Invalid("subscription identifier above 268,435,455"))
}

fn users<S: Sink>(s: &mut S, props: &[UserProperty]) -> Result<(), EncodeError> {
    for (name, value) in props {
        s.put_u8(USER_PROPERTY);
        s.put_str(name)?;
        s.put_str(value)?;
    }
    Ok(())
}

impl WriteProps for ConnectProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        four(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        two(s, RECEIVE_MAXIMUM, self.receive_maximum);
        four(s, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        two(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        boolean(s, REQUEST_RESPONSE_INFORMATION, self.request_response_information);
        boolean(s, REQUEST_PROBLEM_INFORMATION, self.request_problem_information);
        users(s, &self.user_properties)?;
        string(s, AUTHENTICATION_METHOD, self.authentication_method.as_ref())?;
        binary(s, AUTHENTICATION_DATA, self.authentication_data.as_ref())
    }
}

impl WriteProps for WillProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        four(s, WILL_DELAY_INTERVAL, self.will_delay_interval);
        byte(s, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        four(s, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        string(s, CONTENT_TYPE, self.content_type.as_ref())?;
        string(s, RESPONSE_TOPIC, self.response_topic.as_ref())?;
        binary(s, CORRELATION_DATA, self.correlation_data.as_ref())?;
        users(s, &self.user_properties)
    }
}

impl WriteProps for ConnAckProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        four(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        two(s, RECEIVE_MAXIMUM, self.receive_maximum);
        byte(s, MAXIMUM_QOS, self.maximum_qos.map(|q| q as u8));
        boolean(s, RETAIN_AVAILABLE, self.retain_available);
        four(s, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        string(s, ASSIGNED_CLIENT_IDENTIFIER, self.assigned_client_identifier.as_ref())?;
        two(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        string(s, REASON_STRING, self.reason_string.as_ref())?;
        users(s, &self.user_properties)?;
        boolean(s, WILDCARD_SUBSCRIPTION_AVAILABLE, self.wildcard_subscription_available);
        boolean(s, SUBSCRIPTION_IDENTIFIER_AVAILABLE, self.subscription_identifiers_available);
        boolean(s, SHARED_SUBSCRIPTION_AVAILABLE, self.shared_subscription_available);
        two(s, SERVER_KEEP_ALIVE, self.server_keep_alive);
        string(s, RESPONSE_INFORMATION, self.response_information.as_ref())?;
        string(s, SERVER_REFERENCE, self.server_reference.as_ref())?;
        string(s, AUTHENTICATION_METHOD, self.authentication_method.as_ref())?;
        binary(s, AUTHENTICATION_DATA, self.authentication_data.as_ref())
    }
}

impl WriteProps for PublishProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        byte(s, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        four(s, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        two(s, TOPIC_ALIAS, self.topic_alias);
        string(s, RESPONSE_TOPIC, self.response_topic.as_ref())?;
        binary(s, CORRELATION_DATA, self.correlation_data.as_ref())?;
        users(s, &self.user_properties)?;
        for &id in &self.subscription_identifiers {
            subscription_id(s, id)?;
        }
        string(s, CONTENT_TYPE, self.content_type.as_ref())
    }
}

impl WriteProps for AckProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        string(s, REASON_STRING, self.reason_string.as_ref())?;
        users(s, &self.user_properties)
    }
}

impl WriteProps for SubscribeProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        if let Some(id) = self.subscription_identifier {
            subscription_id(s, id)?;
        }
        users(s, &self.user_properties)
    }
}

/// The properties of UNSUBSCRIBE: user properties only.
pub(crate) struct UserProps<'a>(pub(crate) &'a [UserProperty]);

impl WriteProps for UserProps<'_> {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        users(s, self.0)
    }
}

impl WriteProps for DisconnectProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        four(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        string(s, REASON_STRING, self.reason_string.as_ref())?;
        users(s, &self.user_properties)?;
        string(s, SERVER_REFERENCE, self.server_reference.as_ref())
    }
}

impl WriteProps for AuthProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        string(s, AUTHENTICATION_METHOD, self.authentication_method.as_ref())?;
        binary(s, AUTHENTICATION_DATA, self.authentication_data.as_ref())?;
        string(s, REASON_STRING, self.reason_string.as_ref())?;
        users(s, &self.user_properties)
    }
}
