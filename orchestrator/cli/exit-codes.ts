// Exit codes scripts can rely on, the same for every command, and the one error type commands
// throw to end with one of them. Every message says what to do next.

export const ExitCode = {
  /** Done: the command did what it was asked. */
  OK: 0,
  /** Something went wrong that is none of the below (an I/O error, a server error). */
  FAILURE: 1,
  /** The command line is wrong: unknown command or option, missing or bad argument. */
  USAGE: 2,
  /** The orchestrator cannot be reached (not started, wrong --server, wrong token). */
  UNREACHABLE: 3,
  /** No such job, or no run folder for it. */
  NOT_FOUND: 4,
  /** The request was understood and refused: an invalid spec, a plan that does not fit, a job that cannot be cancelled or resumed. */
  REJECTED: 5,
  /** `watch` (and `submit --watch`): the job ended FAILED. */
  JOB_FAILED: 6,
  /** `watch` (and `submit --watch`): the job ended CANCELLED. */
  JOB_CANCELLED: 7,
  /** `plan`: the job fits the GPUs its spec names (resources.accelerators), but this node (or, with --remote, no node) has them. */
  DEVICES_MISSING: 8,
  /** Interrupted (Ctrl-C) while waiting. */
  INTERRUPTED: 130,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export const EXIT_CODES_HELP = `Exit codes:
  0  done                       4  no such job (or no run folder for it)
  1  failure (I/O, server)      5  refused: invalid spec, plan does not fit, cannot cancel/resume
  2  usage error                6  watched job ended FAILED
  3  server unreachable         7  watched job ended CANCELLED
                                8  plan fits, but no node here has the GPUs the spec names
`;

export class CliError extends Error {
  override name = 'CliError';
  constructor(
    readonly exitCode: ExitCodeValue,
    message: string,
    /** Extra lines printed after the message (e.g. one per invalid spec field). */
    readonly details: string[] = [],
  ) {
    super(message);
  }
}
