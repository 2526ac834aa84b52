// bench/kstreams — the Kafka Streams side of bench/pipeline.sh.
//
//   Pipeline run BOOTSTRAP APP_ID IN_TOPIC OUT_TOPIC STATE_DIR
//       reads JSON objects from IN_TOPIC and writes {"id": value.id, "n": value.n * 2} (JSON,
//       Jackson) to OUT_TOPIC: one stream thread, processing.guarantee at_least_once (or
//       exactly_once_v2 when the environment's PIPELINE_GUARANTEE is exactly_once), every
//       other setting Kafka Streams' default. Prints "READY <unix ms>" on standard output the
//       first time the instance is RUNNING; closes cleanly on SIGTERM.
//   Pipeline admin BOOTSTRAP create PARTITIONS CONFIGS TOPIC...
//       creates the topics (replication factor 1); CONFIGS is "k=v,k=v" or "-".
//   Pipeline admin BOOTSTRAP delete TOPIC...
//       deletes the topics (missing ones are ignored).
package faustrs.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;

public final class Pipeline {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    /** The transformation: {"id": value.id, "n": value.n * 2}. */
    static byte[] transform(byte[] value) {
        try {
            JsonNode in = MAPPER.readTree(value);
            ObjectNode out = MAPPER.createObjectNode();
            out.set("id", in.get("id"));
            out.put("n", in.get("n").asLong() * 2);
            return MAPPER.writeValueAsBytes(out);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static void run(String bootstrap, String appId, String in, String out, String stateDir)
            throws InterruptedException {
        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        boolean exactlyOnce = "exactly_once".equals(System.getenv("PIPELINE_GUARANTEE"));
        props.put(
                StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
                exactlyOnce ? StreamsConfig.EXACTLY_ONCE_V2 : StreamsConfig.AT_LEAST_ONCE);
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(in, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
                .mapValues(Pipeline::transform)
                .to(out, Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        CountDownLatch closed = new CountDownLatch(1);
        boolean[] announced = {false};
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING && !announced[0]) {
                announced[0] = true;
                System.out.println("READY " + System.currentTimeMillis());
                System.out.flush();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("kstreams-pipeline: stream thread failed: " + e);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                    .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(20));
            closed.countDown();
        }));
        streams.start();
        closed.await();
    }

    static void admin(String bootstrap, String op, List<String> args)
            throws InterruptedException, ExecutionException {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(props)) {
            switch (op) {
                case "create" -> {
                    int partitions = Integer.parseInt(args.get(0));
                    Map<String, String> configs = new HashMap<>();
                    if (!args.get(1).equals("-")) {
                        for (String kv : args.get(1).split(",")) {
                            String[] p = kv.split("=", 2);
                            configs.put(p[0], p[1]);
                        }
                    }
                    List<NewTopic> topics = new ArrayList<>();
                    for (String name : args.subList(2, args.size())) {
                        topics.add(new NewTopic(name, partitions, (short) 1).configs(configs));
                    }
                    admin.createTopics(topics).all().get();
                }
                case "delete" -> {
                    try {
                        admin.deleteTopics(args).all().get();
                    } catch (ExecutionException e) {
                        if (!(e.getCause() instanceof UnknownTopicOrPartitionException)) {
                            throw e;
                        }
                    }
                }
                default -> throw new IllegalArgumentException("unknown admin operation " + op);
            }
        }
    }

    public static void main(String[] argv) throws Exception {
        List<String> a = Arrays.asList(argv);
        if (a.size() == 6 && a.get(0).equals("run")) {
            run(a.get(1), a.get(2), a.get(3), a.get(4), a.get(5));
        } else if (a.size() >= 4 && a.get(0).equals("admin")) {
            admin(a.get(1), a.get(2), a.subList(3, a.size()));
        } else {
            System.err.println("usage: Pipeline run BOOTSTRAP APP_ID IN OUT STATE_DIR\n"
                    + "       Pipeline admin BOOTSTRAP create PARTITIONS CONFIGS|- TOPIC...\n"
                    + "       Pipeline admin BOOTSTRAP delete TOPIC...");
            System.exit(2);
        }
    }
}
