// Kafka's own Java producer (kafka-clients, from `scripts/kafka classpath`), driven by a script on
// standard input, so tests can produce exactly what a Java integration would. Run as a single
// source file (no javac step):
//
//   java -cp "$(scripts/kafka classpath)" ProduceRecords.java BOOTSTRAP TOPIC [TXN_ID] < script
//
// With TXN_ID the producer is transactional. Script lines, fields separated by single spaces,
// every bytes field base64 or `-` for null:
//
//   codec NAME                                     (a new producer with this `compression.type`:
//                                                  none, gzip, snappy, lz4, zstd; the first
//                                                  `send` without one uses none)
//   topic NAME                                     (where the next records go; TOPIC at first)
//   send KEY VALUE [HEADER_KEY:HEADER_VALUE ...]   (header keys base64 of UTF-8 text)
//   begin | commit | abort                         (transactions)
//   flush                                          (close the current batch)
//
// Records are batched (large linger and batch size) until `flush`, a transaction's end, the next
// `codec` or the end of the script, so a codec compresses many records at once, as a busy producer would.
// Prints `sent N` at the end; any error exits non-zero.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class ProduceRecords {
    static byte[] bytes(String field) {
        return field.equals("-") ? null : Base64.getDecoder().decode(field);
    }

    static KafkaProducer<byte[], byte[]> open(String[] args, String codec) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        props.put(ProducerConfig.LINGER_MS_CONFIG, "60000");
        props.put(ProducerConfig.BATCH_SIZE_CONFIG, "1048576");
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        if (args.length > 2) {
            props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, args[2]);
        }
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props);
        if (args.length > 2) {
            producer.initTransactions();
        }
        return producer;
    }

    public static void main(String[] args) throws Exception {
        String topic = args[1];
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        KafkaProducer<byte[], byte[]> producer = null;
        BufferedReader in =
                new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] f = line.strip().split(" ");
            if (f[0].equals("codec") || producer == null) {
                if (producer != null) {
                    producer.close();
                }
                producer = open(args, f[0].equals("codec") ? f[1] : "none");
            }
            switch (f[0]) {
                case "codec", "" -> { }
                case "topic" -> topic = f[1];
                case "send" -> {
                    ProducerRecord<byte[], byte[]> record =
                            new ProducerRecord<>(topic, bytes(f[1]), bytes(f[2]));
                    for (int i = 3; i < f.length; i++) {
                        String[] kv = f[i].split(":", 2);
                        String key = new String(bytes(kv[0]), StandardCharsets.UTF_8);
                        record.headers().add(new RecordHeader(key, bytes(kv[1])));
                    }
                    sent.add(producer.send(record));
                }
                case "begin" -> producer.beginTransaction();
                case "commit" -> producer.commitTransaction();
                case "abort" -> {
                    producer.flush(); // the records reach the log, then are aborted
                    producer.abortTransaction();
                }
                case "flush" -> producer.flush();
                default -> throw new IllegalArgumentException("unknown command: " + f[0]);
            }
        }
        if (producer != null) {
            producer.close(); // sends what is left
        }
        int acknowledged = 0;
        for (Future<RecordMetadata> future : sent) {
            future.get();
            acknowledged++;
        }
        System.out.println("sent " + acknowledged);
    }
}
