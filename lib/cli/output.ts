/**
 * Where the command writes: results to stdout (a table, or one JSON document with --json), everything for the
 * person watching (progress, notes, warnings) to stderr. Colour only on a terminal, and never with NO_COLOR.
 */
export interface Stream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface OutputOptions {
  stdout: Stream;
  stderr: Stream;
  env: NodeJS.ProcessEnv;
  json: boolean;
}

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, cyan: 36, gray: 90, bold: 1 } as const;
export type ColorName = keyof typeof CODES;

export class Output {
  readonly json: boolean;
  readonly color: boolean;
  readonly errColor: boolean;
  private readonly stdout: Stream;
  private readonly stderr: Stream;
  private active?: ProgressLine;

  constructor(options: OutputOptions) {
    this.stdout = options.stdout;
    this.stderr = options.stderr;
    this.json = options.json;
    const allowed = !options.env.NO_COLOR && options.env.TERM !== 'dumb';
    const forced = Boolean(options.env.FORCE_COLOR && options.env.FORCE_COLOR !== '0');
    this.color = !this.json && allowed && (forced || Boolean(options.stdout.isTTY));
    this.errColor = allowed && (forced || Boolean(options.stderr.isTTY));
  }

  /** Result text (stdout). */
  print(text: string): void {
    this.active?.clear();
    this.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    this.active?.redraw();
  }

  /** The one JSON document a --json run prints. */
  printJson(value: unknown): void {
    this.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A note for the person (stderr). */
  note(text: string): void {
    this.active?.clear();
    this.stderr.write(`${text}\n`);
    this.active?.redraw();
  }

  paint(color: ColorName, text: string, stream: 'out' | 'err' = 'out'): string {
    const on = stream === 'out' ? this.color : this.errColor;
    return on ? `\u001b[${CODES[color]}m${text}\u001b[0m` : text;
  }

  /**
   * A progress line on stderr that appears only once the work has taken a second. On a terminal it is redrawn in
   * place; otherwise each new state is a line of its own, at most one a second.
   */
  progress(label: string): ProgressLine {
    const line = new ProgressLine(this.stderr, label, () => {
      if (this.active === line) this.active = undefined;
    });
    this.active = line;
    return line;
  }
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export class ProgressLine {
  private text = '';
  private shown = false;
  private frame = 0;
  private lastLine = 0;
  private lastPrinted = '';
  private readonly started = Date.now();
  private readonly timer: NodeJS.Timeout;
  private readonly tty: boolean;

  constructor(
    private readonly stream: Stream,
    private readonly label: string,
    private readonly onEnd: () => void,
    delayMs = 1000,
  ) {
    this.tty = Boolean(stream.isTTY);
    this.timer = setInterval(() => this.tick(delayMs), this.tty ? 100 : 250);
    this.timer.unref();
  }

  update(text: string): void {
    this.text = text;
  }

  clear(): void {
    if (this.tty && this.shown) this.stream.write('\r\u001b[2K');
  }

  redraw(): void {
    if (this.tty && this.shown) this.draw();
  }

  /** Ends the line; `final` (if any) stays on stderr when the progress was shown. */
  done(final?: string): void {
    clearInterval(this.timer);
    this.clear();
    if (this.shown && final) this.stream.write(`${this.label}: ${final}\n`);
    this.onEnd();
  }

  private tick(delayMs: number): void {
    const elapsed = Date.now() - this.started;
    if (elapsed < delayMs) return;
    this.shown = true;
    if (this.tty) {
      this.frame = (this.frame + 1) % SPINNER.length;
      this.draw();
    } else if (elapsed - this.lastLine >= 1000 && this.text !== this.lastPrinted) {
      this.lastLine = elapsed;
      this.lastPrinted = this.text;
      this.stream.write(`${this.label}: ${this.text || '…'} (${Math.round(elapsed / 1000)}s)\n`);
    }
  }

  private draw(): void {
    const seconds = Math.round((Date.now() - this.started) / 1000);
    this.stream.write(
      `\r\u001b[2K${SPINNER[this.frame]} ${this.label}${this.text ? `: ${this.text}` : ''} (${seconds}s)`,
    );
  }
}
