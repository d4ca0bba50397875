/**
 * What {@linkcode Runtime.agents} tells about each agent.
 *
 * @module
 */

/** What {@linkcode Runtime.agents} tells about each agent. */
export interface AgentStatus {
  /** The agent's name. */
  name: string;
  /** Its kind patterns. */
  subscribe: readonly string[];
  /** True while it is consuming events. */
  running: boolean;
  /** Position of the last event it finished, or `null`. */
  position: string | null;
  /** Events it gave up on, over its whole life. */
  failures: number;
  /** Events it finished since this runtime was created. */
  handled: number;
  /** True while another process runs it: this one takes over when that one's lease ends. */
  standby: boolean;
}
