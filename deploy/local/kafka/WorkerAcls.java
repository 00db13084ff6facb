// The worker's ACLs on the secured local stack (issue 26; docs/security.md#acls), created with
// Kafka's own Admin client over the plain listener (its principal, User:ANONYMOUS, is a super
// user there). The broker denies everything else (allow.everyone.if.no.acl.found=false), so the
// secured tests prove this list is enough. Names are '*' because the tests make topics, groups
// and transactional ids of random names; the operations are exactly the documented ones.
//
//   java -cp "$KAFKA_HOME/libs/*:<classes>" WorkerAcls BOOTSTRAP PRINCIPAL[-OPERATION]...
//
// PRINCIPAL-OPERATION grants the list but that operation on topics (User:no-write-WRITE): the
// principals tests/secure/test_deny_by_default.py uses to show what a missing ACL does.
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public final class WorkerAcls {
    public static void main(String[] args) throws Exception {
        Properties settings = new Properties();
        settings.put("bootstrap.servers", args[0]);
        List<AclBinding> acls = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            String[] parts = args[i].split("-(?=[A-Z_]+$)");
            String who = parts[0];
            AclOperation without = parts.length > 1 ? AclOperation.valueOf(parts[1]) : null;
            List<AclBinding> mine = new ArrayList<>();
            // Read the input, Write the outputs (each implies Describe); DescribeConfigs for the
            // start-up check (max.message.bytes, cleanup.policy); Create for `topics create`.
            allow(mine, who, ResourceType.TOPIC, AclOperation.READ, AclOperation.WRITE,
                  AclOperation.DESCRIBE_CONFIGS, AclOperation.CREATE);
            allow(mine, who, ResourceType.GROUP, AclOperation.READ);  // join, commit offsets
            allow(mine, who, ResourceType.TRANSACTIONAL_ID, AclOperation.WRITE);  // exactly_once
            mine.removeIf(acl -> acl.entry().operation() == without && acl.pattern().resourceType() == ResourceType.TOPIC);
            acls.addAll(mine);
        }
        try (Admin admin = Admin.create(settings)) {
            admin.createAcls(acls).all().get();
        }
    }

    private static void allow(List<AclBinding> acls, String who, ResourceType type, AclOperation... operations) {
        for (AclOperation operation : operations) {
            acls.add(new AclBinding(new ResourcePattern(type, "*", PatternType.LITERAL),
                                    new AccessControlEntry(who, "*", operation, AclPermissionType.ALLOW)));
        }
    }
}
