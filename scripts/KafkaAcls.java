// Creates ACLs on a broker with the Kafka Admin API (run by `scripts/kafka up-secure` in
// single-file source mode: java -cp "<kafka jars>" KafkaAcls.java CLIENT_PROPERTIES < RULES).
//
// One rule per line: PERMISSION PRINCIPAL OPERATION RESOURCE_TYPE PATTERN_TYPE NAME, e.g.
//   ALLOW User:integration WRITE TOPIC LITERAL responder.events
// Blank lines and lines starting with # are skipped. Creating an ACL that exists is a no-op.

import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class KafkaAcls {
    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: KafkaAcls CLIENT_PROPERTIES < RULES");
            System.exit(2);
        }
        Properties props = new Properties();
        try (FileInputStream in = new FileInputStream(args[0])) {
            props.load(in);
        }
        List<AclBinding> bindings = new ArrayList<>();
        BufferedReader reader = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        int number = 0;
        while ((line = reader.readLine()) != null) {
            number++;
            line = line.trim();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String[] f = line.split("\\s+");
            if (f.length != 6) {
                throw new IllegalArgumentException("rule " + number + ": expected 6 fields, got " + f.length);
            }
            ResourcePattern pattern = new ResourcePattern(
                ResourceType.valueOf(f[3]), f[5], PatternType.valueOf(f[4]));
            AccessControlEntry entry = new AccessControlEntry(
                f[1], "*", AclOperation.valueOf(f[2]), AclPermissionType.valueOf(f[0]));
            bindings.add(new AclBinding(pattern, entry));
        }
        try (Admin admin = Admin.create(props)) {
            admin.createAcls(bindings).all().get(60, TimeUnit.SECONDS);
        }
        System.out.println("kafka: " + bindings.size() + " ACLs in place");
    }
}
