/*
 * Writes Flow's live event file: one JSON object per line, appended while the run progresses.
 *
 * Why a plugin and not the log: Nextflow's own callbacks carry structured data (task ids, Slurm job ids, exit codes,
 * resource usage) that the log only shows as free text. Flow tails this file to show progress per process and task.
 *
 * Where: the file named by the environment variable FLOW_EVENTS_FILE, which Flow sets when it starts Nextflow (so no
 * user-controlled value ever reaches Groovy config); without it, `events.ndjson` in the launch directory.
 *
 * Rules: the observer must never break a run, so every callback is guarded and only the first failure of each kind
 * is logged. Callbacks come from several Nextflow threads, so writing is synchronized. Each line is written with one
 * unbuffered append (visible at once to readers on the same host); the data is forced to storage on flow events and
 * at most about once a second otherwise, so readers on other hosts of a shared filesystem (a Slurm head job's node vs.
 * Flow's host) see it soon without an fsync per task event.
 */
package flowjupyter.nf

import java.nio.charset.StandardCharsets
import java.nio.file.FileSystems
import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.Paths
import java.time.temporal.TemporalAccessor
import java.time.Instant
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.Executors
import java.util.concurrent.ScheduledExecutorService
import java.util.concurrent.ThreadFactory
import java.util.concurrent.TimeUnit

import groovy.json.JsonOutput
import groovy.transform.CompileStatic
import groovy.util.logging.Slf4j
import nextflow.BuildInfo
import nextflow.Session
import nextflow.processor.TaskHandler
import nextflow.processor.TaskId
import nextflow.processor.TaskProcessor
import nextflow.processor.TaskRun
import nextflow.script.WorkflowMetadata
import nextflow.trace.TraceObserver
import nextflow.trace.TraceRecord
import nextflow.trace.WorkflowStats
import nextflow.util.Duration
import nextflow.util.MemoryUnit

@Slf4j
@CompileStatic
class FlowEventsObserver implements TraceObserver {

    /** Version of the event schema; bump it when a field changes meaning. */
    static final int SCHEMA_VERSION = 1
    static final String ENV_EVENTS_FILE = 'FLOW_EVENTS_FILE'
    static final String DEFAULT_FILE_NAME = 'events.ndjson'
    /** Trace fields left out of task events: `script` is large (it is in the task's .command.sh anyway) and `env`
     *  may carry credentials. */
    static final Set<String> OMITTED_TRACE_FIELDS = ['script', 'env'] as Set<String>
    static final long SYNC_INTERVAL_MS = 1000

    private final Session session
    private final Map<String, String> environment
    private final Set<String> warned = ConcurrentHashMap.<String>newKeySet()

    private Path eventsFile
    private FileOutputStream out
    private boolean disabled
    private boolean dirty
    private boolean errorReported
    private ScheduledExecutorService syncer

    FlowEventsObserver(Session session) {
        this(session, System.getenv())
    }

    FlowEventsObserver(Session session, Map<String, String> environment) {
        this.session = session
        this.environment = environment
    }

    // --- TraceObserver -------------------------------------------------------------------------------------------

    @Override
    void onFlowCreate(Session session) {
        guard('flow_create') {
            final WorkflowMetadata meta = session.getWorkflowMetadata()
            final Map<String, Object> fields = new LinkedHashMap<String, Object>()
            fields.put('resumed', session.isResumeMode())
            fields.put('work_dir', pathString(session.getWorkDir()))
            fields.put('launch_dir', pathString(launchDir()))
            fields.put('script_file', pathString(meta?.getScriptFile()))
            fields.put('profile', session.getProfile())
            fields.put('nextflow_version', BuildInfo.getVersion())
            fields.put('pid', ProcessHandle.current().pid())
            fields.put('hostname', hostname())
            emit('flow_create', fields, true)
        }
    }

    @Override
    void onFlowBegin() {
        guard('flow_begin') { emit('flow_begin', [:], true) }
    }

    @Override
    void onProcessCreate(TaskProcessor process) {
        guard('process_create') {
            emit('process_create', [process: (Object) process.getName(), process_id: (Object) process.getId()], false)
        }
    }

    @Override
    void onProcessTerminate(TaskProcessor process) {
        guard('process_terminate') {
            emit('process_terminate', [process: (Object) process.getName(), process_id: (Object) process.getId()], false)
        }
    }

    @Override
    void onProcessPending(TaskHandler handler, TraceRecord trace) {
        guard('task_pending') { emitTask('task_pending', handler, trace) }
    }

    @Override
    void onProcessSubmit(TaskHandler handler, TraceRecord trace) {
        guard('task_submit') { emitTask('task_submit', handler, trace) }
    }

    @Override
    void onProcessStart(TaskHandler handler, TraceRecord trace) {
        guard('task_start') { emitTask('task_start', handler, trace) }
    }

    @Override
    void onProcessComplete(TaskHandler handler, TraceRecord trace) {
        guard('task_complete') { emitTask('task_complete', handler, trace) }
    }

    @Override
    void onProcessCached(TaskHandler handler, TraceRecord trace) {
        guard('task_cached') { emitTask('task_cached', handler, trace) }
    }

    @Override
    void onFilePublish(Path destination) {
        onFilePublish(destination, null)
    }

    @Override
    void onFilePublish(Path destination, Path source) {
        guard('file_publish') {
            emit('file_publish', [destination: (Object) pathString(destination), source: (Object) pathString(source)],
                false)
        }
    }

    @Override
    void onFlowError(TaskHandler handler, TraceRecord trace) {
        guard('flow_error') { reportErrorOnce(handler, trace) }
    }

    @Override
    void onFlowComplete() {
        guard('flow_complete') {
            final WorkflowMetadata meta = session.getWorkflowMetadata()
            final boolean success = meta != null ? meta.isSuccess() : session.isSuccess()
            final Map<String, Object> fields = new LinkedHashMap<String, Object>()
            fields.put('success', success)
            fields.put('exit_status', meta?.getExitStatus())
            fields.put('error_message', success ? null : (meta?.getErrorMessage() ?: errorMessage()))
            fields.put('error_report', success ? null : meta?.getErrorReport())
            fields.put('stats', stats(meta))
            fields.put('duration', meta?.getDuration()?.toMillis())
            synchronized (this) {
                // Nextflow aborts a failed session on another thread and may call onFlowError only after this
                // (or not at all, for errors outside tasks): report the error here first, so a failed run always
                // ends with flow_error followed by flow_complete.
                if (!success)
                    reportErrorOnce(null, null)
                emit('flow_complete', fields, true)
            }
        }
        close()
    }

    /** One flow_error per run: Nextflow may report an error twice (a failing task, then the session abort). */
    private synchronized void reportErrorOnce(TaskHandler handler, TraceRecord trace) {
        if (errorReported)
            return
        errorReported = true
        final Map<String, Object> fields = new LinkedHashMap<String, Object>()
        fields.put('error_message', errorMessage() ?: session.getWorkflowMetadata()?.getErrorMessage())
        // The failing task: the handler's when Nextflow passes one, else the one recorded in the session's fault.
        final TraceRecord record = trace ?: handler?.getTraceRecord()
        final TaskRun task = handler?.getTask() ?: session.getFault()?.getTask()
        if (record != null || task != null) {
            fields.put('task', record?.get('name') ?: task?.getName())
            fields.put('process', record?.get('process') ?: task?.getProcessor()?.getName())
            fields.put('task_id', jsonSafe(record?.get('task_id') ?: task?.getId()))
            final Object exit = record?.get('exit') ?: task?.getExitStatus()
            fields.put('exit', exit == (Object) Integer.MAX_VALUE ? null : jsonSafe(exit))
            fields.put('workdir', jsonSafe(record?.get('workdir') ?: task?.getWorkDir()))
        }
        fields.put('error_report', session.getFault()?.getReport())
        emit('flow_error', fields, true)
    }

    /** True: tasks then record their resource usage (%cpu, peak_rss, rchar …), as with `-with-trace`. */
    @Override
    boolean enableMetrics() {
        return true
    }

    // --- writing -------------------------------------------------------------------------------------------------

    /** The event file: FLOW_EVENTS_FILE (relative to the launch directory if relative), else events.ndjson there. */
    Path resolveEventsFile() {
        final String named = environment?.get(ENV_EVENTS_FILE)
        final Path base = launchDir()
        if (named) {
            final Path path = Paths.get(named)
            return path.isAbsolute() ? path : base.resolve(path)
        }
        return base.resolve(DEFAULT_FILE_NAME)
    }

    private void emitTask(String event, TaskHandler handler, TraceRecord trace) {
        final TraceRecord record = trace ?: handler?.getTraceRecord()
        final Map<String, Object> task = taskFields(record)
        if (!task.containsKey('name') && handler?.getTask() != null)
            task.put('name', handler.getTask().getName())
        emit(event, [task: (Object) task], false)
    }

    private synchronized void emit(String event, Map<String, Object> fields, boolean sync) {
        if (disabled)
            return
        final Map<String, Object> line = new LinkedHashMap<String, Object>()
        line.put('v', SCHEMA_VERSION)
        line.put('event', event)
        line.put('time', System.currentTimeMillis())
        line.put('run_name', session.getRunName())
        line.put('session_id', session.getUniqueId()?.toString())
        line.putAll(fields)
        final byte[] bytes = (JsonOutput.toJson(line) + '\n').getBytes(StandardCharsets.UTF_8)
        try {
            open()
            out.write(bytes)
            out.flush()
        }
        catch (IOException e) {
            disabled = true
            log.warn("Flow events: cannot write ${eventsFile} — no further events are written: ${e}")
            return
        }
        dirty = true
        if (sync)
            syncNow()
    }

    /**
     * Forces written events to storage. FileDescriptor.sync, not FileChannel.force: a FileChannel is closed for good
     * when the calling thread is interrupted, and Nextflow interrupts its own threads (e.g. the task finalizer that
     * reports a failure) while aborting a run.
     */
    private synchronized void syncNow() {
        try {
            if (dirty && out != null) {
                out.getFD().sync()
                dirty = false
            }
        }
        catch (Throwable e) {
            warnOnce('sync', e)
        }
    }

    private void open() throws IOException {
        if (out != null)
            return
        eventsFile = resolveEventsFile()
        if (eventsFile.getParent() != null)
            Files.createDirectories(eventsFile.getParent())
        out = new FileOutputStream(eventsFile.toFile(), true)
        syncer = Executors.newSingleThreadScheduledExecutor(new ThreadFactory() {
            @Override
            Thread newThread(Runnable runnable) {
                final Thread thread = new Thread(runnable, 'flow-events-sync')
                thread.setDaemon(true)
                return thread
            }
        })
        syncer.scheduleWithFixedDelay({ syncNow() } as Runnable, SYNC_INTERVAL_MS, SYNC_INTERVAL_MS,
            TimeUnit.MILLISECONDS)
        log.debug("Flow events: writing ${eventsFile}")
    }

    private synchronized void close() {
        try {
            syncer?.shutdown()
            syncer = null
            syncNow()
            out?.close()
        }
        catch (Throwable e) {
            warnOnce('close', e)
        }
        finally {
            out = null
            disabled = true
        }
    }

    private void guard(String what, Closure body) {
        try {
            body.call()
        }
        catch (Throwable e) {
            warnOnce(what, e)
        }
    }

    private void warnOnce(String what, Throwable e) {
        if (warned.add(what))
            log.warn("Flow events: ${what} failed (further failures of this kind are not logged): ${e}", e)
    }

    // --- values --------------------------------------------------------------------------------------------------

    private Path launchDir() {
        final Path fromMeta = session.getWorkflowMetadata()?.getLaunchDir()
        return fromMeta ?: Paths.get(System.getProperty('user.dir')).toAbsolutePath()
    }

    private String errorMessage() {
        final Throwable error = session.getFault()?.getError() ?: session.getError()
        if (error == null)
            return null
        return error.getMessage() ?: error.toString()
    }

    private static Map<String, Object> stats(WorkflowMetadata meta) {
        final WorkflowStats stats = meta?.getStats()
        if (stats == null)
            return null
        final Map<String, Object> result = new LinkedHashMap<String, Object>()
        result.put('succeeded', stats.getSucceedCount())
        result.put('failed', stats.getFailedCount())
        result.put('ignored', stats.getIgnoredCount())
        result.put('cached', stats.getCachedCount())
        result.put('retries', stats.getRetriesCount())
        result.put('aborted', stats.getAbortedCount())
        return result
    }

    /** The trace record's whole store as JSON-safe values, minus OMITTED_TRACE_FIELDS; native_id as a string,
     *  unknown exit status and timestamps as null, plus `executor`. */
    static Map<String, Object> taskFields(TraceRecord record) {
        final Map<String, Object> result = new LinkedHashMap<String, Object>()
        if (record == null)
            return result
        for (Map.Entry<String, Object> entry : record.getStore().entrySet()) {
            if (entry.key in OMITTED_TRACE_FIELDS)
                continue
            result.put(entry.key, jsonSafe(entry.value))
        }
        if (result.get('native_id') != null)
            result.put('native_id', result.get('native_id').toString())
        // Nextflow's placeholders for "not yet known" become null: exit Integer.MAX_VALUE, timestamps 0.
        if (result.get('exit') == (Object) Integer.MAX_VALUE)
            result.put('exit', null)
        for (String stamp : ['submit', 'start', 'complete']) {
            if (result.get(stamp) instanceof Number && ((Number) result.get(stamp)).longValue() == 0L)
                result.put(stamp, null)
        }
        if (record.getExecutorName() != null)
            result.put('executor', record.getExecutorName())
        return result
    }

    /** Nextflow's value types as JSON: durations in ms, memory in bytes, paths and ids as strings/numbers. */
    static Object jsonSafe(Object value) {
        if (value == null || value instanceof Boolean || value instanceof String)
            return value
        if (value instanceof TaskId)
            return ((TaskId) value).intValue()
        if (value instanceof Double || value instanceof Float) {
            final double number = ((Number) value).doubleValue()
            return Double.isNaN(number) || Double.isInfinite(number) ? null : value
        }
        if (value instanceof Number)
            return value
        if (value instanceof Duration)
            return ((Duration) value).toMillis()
        if (value instanceof MemoryUnit)
            return ((MemoryUnit) value).toBytes()
        if (value instanceof Path)
            return pathString((Path) value)
        if (value instanceof CharSequence || value instanceof Enum)
            return value.toString()
        if (value instanceof Date)
            return ((Date) value).getTime()
        if (value instanceof Instant)
            return ((Instant) value).toEpochMilli()
        if (value instanceof TemporalAccessor)
            return value.toString()
        if (value instanceof Map) {
            final Map<String, Object> result = new LinkedHashMap<String, Object>()
            for (Map.Entry entry : ((Map) value).entrySet())
                result.put(String.valueOf(entry.key), jsonSafe(entry.value))
            return result
        }
        if (value instanceof Iterable) {
            final List<Object> result = []
            for (Object item : (Iterable) value)
                result.add(jsonSafe(item))
            return result
        }
        if (value instanceof Object[])
            return jsonSafe(Arrays.asList((Object[]) value))
        return value.toString()
    }

    /** A path as a string: the plain absolute path for local files, the URI for remote ones (s3://…). */
    static String pathString(Path path) {
        if (path == null)
            return null
        if (path.getFileSystem() == FileSystems.getDefault())
            return path.toAbsolutePath().toString()
        return path.toUri().toString()
    }

    private static String hostname() {
        try {
            return InetAddress.getLocalHost().getHostName()
        }
        catch (Exception ignored) {
            return System.getenv('HOSTNAME')
        }
    }
}
