// A peer nobody on the project wrote (issue 11 items 5 and 6): the Kafka Java client.
//
//   java TxnPeer produce BOOTSTRAP TOPIC PARTITION commit|abort   (values on stdin, one a line)
//       one transaction holding every value (key "k"), then committed or aborted
//   java TxnPeer lag BOOTSTRAP GROUP TOPIC
//       per partition: "partition committed end lag", as kafka-consumer-groups computes it
//       (the group's committed offset against the partition's latest offset)
//   java TxnPeer deny BOOTSTRAP TOPIC OPERATION
//       ACLs allowing everything on TOPIC but OPERATION (e.g. WRITE) to every PLAINTEXT client
//       (User:ANONYMOUS; once a topic has an ACL, allow.everyone.if.no.acl.found no longer applies)
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class TxnPeer {
    public static void main(String[] args) throws Exception {
        if (args[0].equals("produce")) {
            produce(args[1], args[2], Integer.parseInt(args[3]), args[4].equals("commit"));
        } else if (args[0].equals("lag")) {
            lag(args[1], args[2], args[3]);
        } else {
            deny(args[1], args[2], args[3]);
        }
    }

    static void produce(String bootstrap, String topic, int partition, boolean commit) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("transactional.id", "txn-peer-" + UUID.randomUUID());
        props.put("key.serializer", ByteArraySerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            producer.beginTransaction();
            String line;
            while ((line = in.readLine()) != null) {
                byte[] key = "k".getBytes(StandardCharsets.UTF_8);
                byte[] value = line.getBytes(StandardCharsets.UTF_8);
                producer.send(new ProducerRecord<>(topic, partition, key, value)).get();
            }
            producer.flush();
            if (commit) {
                producer.commitTransaction();
            } else {
                producer.abortTransaction();
            }
        }
    }

    static void deny(String bootstrap, String topic, String operation) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(props)) {
            ResourcePattern pattern = new ResourcePattern(ResourceType.TOPIC, topic, PatternType.LITERAL);
            AclBinding allow = new AclBinding(pattern,
                new AccessControlEntry("User:ANONYMOUS", "*", AclOperation.ALL, AclPermissionType.ALLOW));
            AclBinding deny = new AclBinding(pattern,
                new AccessControlEntry(
                    "User:ANONYMOUS", "*", AclOperation.fromString(operation), AclPermissionType.DENY));
            admin.createAcls(java.util.List.of(allow, deny)).all().get();
        }
    }

    static void lag(String bootstrap, String group, String topic) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(props)) {
            Map<TopicPartition, OffsetAndMetadata> committed =
                admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            int partitions = admin.describeTopics(java.util.List.of(topic)).allTopicNames().get()
                .get(topic).partitions().size();
            Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
            for (int p = 0; p < partitions; p++) {
                latest.put(new TopicPartition(topic, p), OffsetSpec.latest());
            }
            Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> ends = admin.listOffsets(latest).all().get();
            for (int p = 0; p < partitions; p++) {
                TopicPartition tp = new TopicPartition(topic, p);
                OffsetAndMetadata at = committed.get(tp);
                long end = ends.get(tp).offset();
                long offset = at == null ? -1 : at.offset();
                System.out.println(p + " " + offset + " " + end + " " + (at == null ? -1 : end - offset));
            }
        }
    }
}
