/*
 * Entry point of Flow's Nextflow plugin (nf-flow). It has nothing to start itself: the work is done by the
 * TraceObserverFactory listed in META-INF/extensions.idx. Nextflow (pf4j) needs a Plugin-Class all the same.
 */
package flowjupyter.nf

import groovy.transform.CompileStatic
import nextflow.plugin.BasePlugin
import org.pf4j.PluginWrapper

@CompileStatic
class FlowPlugin extends BasePlugin {

    FlowPlugin(PluginWrapper wrapper) {
        super(wrapper)
    }
}
