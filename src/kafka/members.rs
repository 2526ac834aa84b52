//! Who holds which partitions of a classic consumer group, from outside it (DescribeGroups),
//! and which partition librdkafka's producer puts a key in: together they answer "which worker
//! holds this key?" (Faust's table router).

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

/// One member of a group and the partitions it was assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub client_id: String,
    /// (topic, partitions).
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// The members of classic consumer group `group` and their assignments. A group using the
/// KIP-848 protocol lists no members here.
pub fn describe<C: ConsumerContext + 'static>(
    client: &BaseConsumer<C>,
    group: &str,
    timeout: Duration,
) -> Result<Vec<Member>, String> {
    let groups = client
        .fetch_group_list(Some(group), timeout)
        .map_err(|e| format!("cannot describe group {group}: {e}"))?;
    let Some(info) = groups.groups().iter().find(|g| g.name() == group) else {
        return Ok(Vec::new());
    };
    Ok(info
        .members()
        .iter()
        .map(|member| Member {
            client_id: member.client_id().to_string(),
            assignment: member
                .assignment()
                .map(parse_assignment)
                .unwrap_or_default(),
        })
        .collect())
}

/// The topics and partitions of a consumer protocol assignment (KIP-429's layout, any
/// version): version (int16), then an array (int32 count) of topic (int16-length string) and
/// partitions (int32 count, int32 each); the user data that follows is not read. A truncated
/// assignment yields what was read.
pub fn parse_assignment(bytes: &[u8]) -> Vec<(String, Vec<i32>)> {
    let mut reader = Reader { bytes, at: 0 };
    let mut topics = Vec::new();
    let parsed = (|| {
        reader.i16()?;
        for _ in 0..reader.i32()?.max(0) {
            let length = reader.i16()?.max(0) as usize;
            let topic = String::from_utf8_lossy(reader.take(length)?).into_owned();
            let mut partitions = Vec::new();
            for _ in 0..reader.i32()?.max(0) {
                partitions.push(reader.i32()?);
            }
            topics.push((topic, partitions));
        }
        Some(())
    })();
    // A truncated assignment (`None` above) keeps the topics read whole.
    let _ = parsed;
    topics
}

struct Reader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Option<&'b [u8]> {
        let taken = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(taken)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// The partition among `partitions` librdkafka's producer puts a record keyed `key` in, with
/// `partitioner` (librdkafka's property; `None`: its default, `consistent_random`). `None` for
/// the random partitioner or an empty key, which have no fixed partition.
pub fn key_partition(key: &[u8], partitions: u32, partitioner: Option<&str>) -> Option<u32> {
    type Partitioner = unsafe extern "C" fn(
        *const rdkafka::bindings::rd_kafka_topic_t,
        *const std::ffi::c_void,
        usize,
        i32,
        *mut std::ffi::c_void,
        *mut std::ffi::c_void,
    ) -> i32;
    let function: Partitioner = match partitioner.unwrap_or("consistent_random") {
        "consistent" | "consistent_random" => {
            rdkafka::bindings::rd_kafka_msg_partitioner_consistent
        }
        "murmur2" | "murmur2_random" => rdkafka::bindings::rd_kafka_msg_partitioner_murmur2,
        "fnv1a" | "fnv1a_random" => rdkafka::bindings::rd_kafka_msg_partitioner_fnv1a,
        _ => return None,
    };
    if key.is_empty() || partitions == 0 {
        return None;
    }
    // SAFETY: librdkafka's built-in partitioners hash `keylen` bytes at `key` and never touch
    // the topic or the opaques (they exist for user partitioners); `key` outlives the call.
    let partition = unsafe {
        function(
            std::ptr::null(),
            key.as_ptr().cast(),
            key.len(),
            partitions as i32,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    u32::try_from(partition).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(topics: &[(&str, &[i32])], user_data: &[u8]) -> Vec<u8> {
        let mut bytes = 1i16.to_be_bytes().to_vec();
        bytes.extend((topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            bytes.extend((topic.len() as i16).to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                bytes.extend(p.to_be_bytes());
            }
        }
        bytes.extend((user_data.len() as i32).to_be_bytes());
        bytes.extend(user_data);
        bytes
    }

    #[test]
    fn an_assignment_reads_as_its_topics_and_partitions() {
        let bytes = assignment(&[("words", &[0, 3]), ("other", &[])], b"sticky");
        assert_eq!(
            parse_assignment(&bytes),
            vec![("words".into(), vec![0, 3]), ("other".into(), vec![])]
        );
        // Truncated in the second topic: the first is kept.
        assert_eq!(
            parse_assignment(&bytes[..27]),
            vec![("words".into(), vec![0, 3])]
        );
        assert_eq!(parse_assignment(&[]), vec![]);
    }

    #[test]
    fn keys_land_where_the_partitioners_put_them() {
        // librdkafka's default hashes with CRC-32: CRC-32("123456789") is 0xCBF43926.
        assert_eq!(
            key_partition(b"123456789", 1000, None),
            Some(0xCBF4_3926 % 1000)
        );
        for key in [b"a".as_slice(), b"some key", b"\x00\xff"] {
            let p = key_partition(key, 8, None).unwrap();
            assert!(p < 8);
            assert_eq!(
                key_partition(key, 8, Some("consistent")),
                Some(p),
                "the default is CRC32"
            );
        }
        assert_eq!(key_partition(b"", 8, None), None);
        assert_eq!(key_partition(b"a", 8, Some("random")), None);
    }
}
