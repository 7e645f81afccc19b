/** What a bench scenario is, and what the runner gives it. */
import type { BudgetResult, VariantResult } from './harness';

export interface BenchOptions {
  /** Repetitions per variant (medians are taken over them). */
  readonly reps: number;
  /**
   * How many processes run this scenario, one after the other (the scenario's `forks`; 1 under
   * `--quick`): each runs its share of the repetitions, and the budgets are taken over all of them.
   */
  readonly forks: number;
  /** Scale for every duration (1 by default; `--quick` makes it small). */
  readonly timeScale: number;
  readonly quick: boolean;
  readonly check: boolean;
}

/** A pass/fail condition that is not a ratio (the soak's heap and stats checks). */
export interface Check {
  readonly label: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface ScenarioResult {
  /** Printed as is, one after the other. */
  readonly tables: readonly string[];
  readonly budgets: readonly BudgetResult[];
  readonly checks: readonly Check[];
  readonly results?: readonly VariantResult[];
  /** Anything else worth keeping in the JSON. */
  readonly extra?: Record<string, unknown>;
}

export interface Service {
  readonly name: string;
  /** Where it is expected (password redacted), for the skip message. */
  readonly target: string;
  /** Resolve when reachable, reject with the reason otherwise. */
  probe(): Promise<void>;
}

export interface Scenario {
  readonly name: string;
  readonly title: string;
  /** A database the scenario needs; unreachable → skipped, or a failure under `--check`. */
  readonly service?: Service;
  /**
   * Processes to spread the repetitions over (default 1). A process shapes its own numbers (what
   * V8 inlined and optimized first, which server threads its connections got), so a budget that
   * is close should not rest on one of them.
   */
  readonly forks?: number;
  run(options: BenchOptions): Promise<ScenarioResult>;
}
