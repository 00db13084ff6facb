// A peer nobody on the project wrote (issue 11 items 5 and 6): the Kafka Java client.
//
//   java TxnPeer produce BOOTSTRAP TOPIC   (stdin: lines "PARTITION commit|abort VALUE")
//       consecutive lines with the same partition and ending make one transaction (key "k"),
//       committed or aborted; one producer for all of them
//   java TxnPeer lag BOOTSTRAP GROUP TOPIC WAIT_SECONDS
//       per partition: "partition committed end lag", as kafka-consumer-groups computes it
//       (the group's committed offset against the partition's latest offset); asked again
//       every 200 ms until every lag is 0 or WAIT_SECONDS have passed
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
            produce(args[1], args[2]);
        } else if (args[0].equals("lag")) {
            lag(args[1], args[2], args[3], Double.parseDouble(args[4]));
        } else {
            deny(args[1], args[2], args[3]);
        }
    }

    static void produce(String bootstrap, String topic) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("transactional.id", "txn-peer-" + UUID.randomUUID());
        props.put("key.serializer", ByteArraySerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        byte[] key = "k".getBytes(StandardCharsets.UTF_8);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            String open = null;  // "partition ending" of the transaction in progress
            String line;
            while ((line = in.readLine()) != null) {
                String[] fields = line.split(" ", 3);
                String txn = fields[0] + " " + fields[1];
                if (!txn.equals(open)) {
                    end(producer, open);
                    producer.beginTransaction();
                    open = txn;
                }
                byte[] value = fields[2].getBytes(StandardCharsets.UTF_8);
                producer.send(new ProducerRecord<>(topic, Integer.parseInt(fields[0]), key, value)).get();
            }
            end(producer, open);
        }
    }

    static void end(KafkaProducer<byte[], byte[]> producer, String txn) {
        if (txn == null) {
            return;
        }
        producer.flush();
        if (txn.endsWith(" commit")) {
            producer.commitTransaction();
        } else {
            producer.abortTransaction();
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

    static void lag(String bootstrap, String group, String topic, double waitSeconds) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        long deadline = System.nanoTime() + (long) (waitSeconds * 1e9);
        try (Admin admin = Admin.create(props)) {
            while (true) {
                StringBuilder out = new StringBuilder();
                boolean drained = lagOnce(admin, group, topic, out);
                if (drained || System.nanoTime() > deadline) {
                    System.out.print(out);
                    return;
                }
                Thread.sleep(200);
            }
        }
    }

    static boolean lagOnce(Admin admin, String group, String topic, StringBuilder out) throws Exception {
        boolean drained = true;
        {
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
                long lag = at == null ? -1 : end - offset;
                drained &= lag == 0;
                out.append(p + " " + offset + " " + end + " " + lag + "\n");
            }
        }
        return drained;
    }
}
