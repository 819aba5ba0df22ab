/*
 * Nextflow asks every TraceObserverFactory extension for observers when a session is initialised; ours returns the
 * one observer that writes Flow's event file.
 */
package flowjupyter.nf

import groovy.transform.CompileStatic
import nextflow.Session
import nextflow.trace.TraceObserver
import nextflow.trace.TraceObserverFactory

@CompileStatic
class FlowObserverFactory implements TraceObserverFactory {

    @Override
    Collection<TraceObserver> create(Session session) {
        final List<TraceObserver> result = []
        result.add(new FlowEventsObserver(session))
        return result
    }
}
