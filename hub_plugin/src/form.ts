/**
 * The live spawn form: reads the user's choice from the server-rendered controls, and writes
 * an `Evaluation` back (disabled nodes and GPU kinds with reasons, bounds, summary, problems,
 * freshness). Without JavaScript the server-rendered form stands as it is.
 */
import { customLimitsText, evaluate, freshnessText, type Evaluation } from './evaluate.ts';
import type { Choice, FormConfig, Snapshot } from './types.ts';
import { formatCores, formatMemoryQuantity } from './units.ts';
import { customImageRefusal } from './validate.ts';
import type { GpuUseLine } from './notes.ts';

function field<T extends Element>(root: ParentNode, selector: string): T | null {
  return root.querySelector<T>(selector);
}

export class SpawnForm {
  readonly root: HTMLElement;
  readonly config: FormConfig;
  private snapshot: Snapshot | null = null;
  private receivedAt = 0;
  private error: string | null = null;
  private lastPresetFilled = '';
  /** The choice the server refused (config.refusal), as first shown: its reason stays by
   *  Start until the user changes something, even where live data would not show it. */
  private readonly refusedChoice: string;

  constructor(root: HTMLElement, config: FormConfig) {
    this.root = root;
    this.config = config;
    root.addEventListener('change', this.onInput);
    root.addEventListener('input', this.onInput);
    this.syncControls();
    this.refusedChoice = config.refusal ? JSON.stringify(this.readChoice()) : '';
  }

  private radioValue(name: string): string {
    return field<HTMLInputElement>(this.root, `input[name="${name}"]:checked`)?.value ?? '';
  }

  private value(name: string): string {
    return field<HTMLInputElement | HTMLSelectElement>(this.root, `[name="${name}"]`)?.value ?? '';
  }

  readChoice(): Choice {
    return {
      profile: this.radioValue('profile') || this.config.customProfile,
      image: this.radioValue('image'),
      customImage: this.value('custom_image'),
      node: this.value('node'),
      cpu: this.value('cpu'),
      memory: this.value('memory'),
      gpuResource: this.value('gpu_resource'),
      gpuCount: this.value('gpu_count')
    };
  }

  setSnapshot(snapshot: Snapshot, receivedAt: number): void {
    this.snapshot = snapshot;
    this.receivedAt = receivedAt;
    this.update();
  }

  /** The server answered 304: live data is current as of now; stale data keeps ageing. */
  markUnchanged(receivedAt: number): void {
    if (this.snapshot && !this.snapshot.stale) {
      this.snapshot = { ...this.snapshot, age_seconds: 0 };
      this.receivedAt = receivedAt;
    }
    this.updateFreshness();
  }

  setError(message: string | null): void {
    this.error = message;
    this.updateFreshness();
  }

  updateFreshness(now = Date.now()): void {
    const element = field<HTMLElement>(this.root, '[data-tk-freshness]');
    if (!element || !this.snapshot) {
      return;
    }
    const age = this.snapshot.age_seconds + Math.max(0, now - this.receivedAt) / 1000;
    setText(element, freshnessText(age, this.snapshot.stale, this.error));
    element.classList.toggle('jp-tk-is-stale', this.snapshot.stale || this.error !== null);
  }

  private onInput = (event: Event): void => {
    const target = event.target as HTMLInputElement | null;
    if (target?.name === 'gpu_resource') {
      const count = field<HTMLInputElement>(this.root, '[name="gpu_count"]');
      if (count && target.value && (count.value === '' || count.value === '0')) {
        count.value = '1';
      } else if (count && !target.value) {
        count.value = '0';
      }
    }
    this.syncControls();
    this.update();
  };

  /** Enable what the choice uses: the custom size with "Custom", the image field with
   *  "Custom image"; a preset's values are copied into the custom size as a starting point. */
  private syncControls(): void {
    const choice = this.readChoice();
    const custom = field<HTMLFieldSetElement>(this.root, '[data-tk-custom]');
    const preset = this.config.presets.find(p => p.slug === choice.profile);
    if (custom) {
      custom.disabled = Boolean(preset);
    }
    if (preset && preset.slug !== this.lastPresetFilled) {
      this.lastPresetFilled = preset.slug;
      this.setValue('cpu', formatCores(preset.cpu));
      this.setValue('memory', formatMemoryQuantity(preset.memory));
      this.setValue('gpu_resource', preset.gpu?.resource ?? '');
      this.setValue('gpu_count', String(preset.gpu?.count ?? 0));
    } else if (!preset) {
      this.lastPresetFilled = '';
    }
    const customImage = field<HTMLInputElement>(this.root, '[name="custom_image"]');
    if (customImage) {
      const typed = choice.image === '' && this.hasCustomImageChoice();
      customImage.required = typed;
      // The server's grammar and registry allowlist, with its words, before submit.
      const value = choice.customImage.trim();
      const problem = typed && value ? customImageRefusal(this.config, value) : null;
      customImage.setCustomValidity(problem ?? '');
      customImage.setAttribute('aria-invalid', problem ? 'true' : 'false');
    }
  }

  private hasCustomImageChoice(): boolean {
    return field(this.root, 'input[name="image"][value=""]') !== null;
  }

  private setValue(name: string, value: string): void {
    const element = field<HTMLInputElement | HTMLSelectElement>(this.root, `[name="${name}"]`);
    if (element && element.value !== value) {
      element.value = value;
    }
  }

  update(): Evaluation | null {
    if (!this.snapshot) {
      return null;
    }
    const choice = this.readChoice();
    const result = evaluate(this.config, this.snapshot, choice);
    this.renderNodes(result, choice.node);
    this.renderGpuKinds(result, result.gpuResource);
    this.renderPresets(result);
    this.renderBounds(result);
    this.renderNotes(result);
    setText(field<HTMLElement>(this.root, '[data-tk-summary]'), result.summary);
    const refused = this.refusedChoice && this.refusedChoice === JSON.stringify(choice);
    this.renderProblems(refused ? [this.config.refusal ?? ''] : result.problems);
    this.updateFreshness();
    return result;
  }

  private renderNodes(result: Evaluation, selected: string): void {
    const select = field<HTMLSelectElement>(this.root, '[data-tk-node]');
    if (!select) {
      return;
    }
    const rows = result.nodes.map(row => ({
      ...row,
      text: row.reason ? `${row.label} — cannot fit: ${row.reason}` : row.label
    }));
    if (selected && !rows.some(row => row.name === selected)) {
      rows.push({
        name: selected,
        label: selected,
        reason: 'no longer in the cluster',
        disabled: false,
        text: `${selected} — no longer in the cluster`
      });
    }
    const options = Array.from(select.options).slice(1); // [0] is "Any node that fits"
    const sameNodes =
      options.length === rows.length && options.every((option, i) => option.value === rows[i].name);
    if (!sameNodes) {
      const fragment = document.createDocumentFragment();
      for (const row of rows) {
        fragment.appendChild(new Option(row.text, row.name, false, row.name === selected));
      }
      options.forEach(option => option.remove());
      select.appendChild(fragment);
    }
    const current = Array.from(select.options).slice(1);
    rows.forEach((row, i) => {
      const option = current[i];
      if (option.text !== row.text) {
        option.text = row.text;
      }
      option.disabled = row.disabled;
      option.dataset.reason = row.reason ?? '';
    });
    select.value = selected;
  }

  private renderGpuKinds(result: Evaluation, selected: string): void {
    const select = field<HTMLSelectElement>(this.root, '[data-tk-gpu-kind]');
    if (!select) {
      return;
    }
    const options = Array.from(select.options).slice(1); // [0] is "No GPU"
    const same =
      options.length === result.gpuKinds.length &&
      options.every((option, i) => option.value === result.gpuKinds[i].resource);
    if (!same) {
      options.forEach(option => option.remove());
      for (const kind of result.gpuKinds) {
        select.appendChild(new Option(kind.label, kind.resource));
      }
    }
    const current = Array.from(select.options).slice(1);
    result.gpuKinds.forEach((kind, i) => {
      if (current[i].text !== kind.label) {
        current[i].text = kind.label;
      }
      // The kind a preset names stays selectable in its (greyed) field even where absent.
      current[i].disabled = kind.disabled && kind.resource !== selected;
    });
    if (Array.from(select.options).some(option => option.value === selected)) {
      select.value = selected;
    }
  }

  private renderPresets(result: Evaluation): void {
    for (const card of Array.from(this.root.querySelectorAll<HTMLElement>('[data-tk-preset]'))) {
      const slug = card.dataset.tkPreset ?? '';
      const reason = result.presetReasons[slug] ?? '';
      card.classList.toggle('jp-tk-is-unfit', Boolean(reason));
      setText(field<HTMLElement>(card, '[data-tk-reason]'), reason);
    }
  }

  private renderBounds(result: Evaluation): void {
    const { bounds, boundTexts } = result;
    const cpu = field<HTMLInputElement>(this.root, '[name="cpu"]');
    cpu?.setAttribute('max', formatCores(bounds.cpu));
    const count = field<HTMLInputElement>(this.root, '[name="gpu_count"]');
    count?.setAttribute('max', String(bounds.gpus));
    setText(field<HTMLElement>(this.root, '[data-tk-bound="cpu"]'), boundTexts.cpu);
    setText(field<HTMLElement>(this.root, '[data-tk-bound="memory"]'), boundTexts.memory);
    setText(field<HTMLElement>(this.root, '[data-tk-bound="gpus"]'), boundTexts.gpus);
  }

  /** The Custom card's limits, the advisory-memory note and each GPU's live use. */
  private renderNotes(result: Evaluation): void {
    setText(
      field<HTMLElement>(this.root, '[data-tk-custom-limits]'),
      customLimitsText(result.customLimits)
    );
    setText(field<HTMLElement>(this.root, '[data-tk-memory-note]'), result.memoryNotes.join(' '));
    setText(field<HTMLElement>(this.root, '[data-tk-gpu-note]'), result.gpuNotes.join(' '));
    setText(field<HTMLElement>(this.root, '[data-tk-cpu-note]'), result.cpuNotes.join(' '));
    this.renderLines('[data-tk-gpu-use]', result.gpuUse);
    this.renderLines('[data-tk-live-gpus]', result.liveGpus);
  }

  /** A list of lines (GPU use), keeping its items so assistive technology hears only changes. */
  private renderLines(selector: string, lines: GpuUseLine[]): void {
    const list = field<HTMLElement>(this.root, selector);
    if (!list) {
      return;
    }
    const items = Array.from(list.children) as HTMLElement[];
    const same =
      items.length === lines.length &&
      items.every((item, i) => item.dataset.tkResource === lines[i].resource);
    if (!same) {
      list.replaceChildren(
        ...lines.map(line => {
          const item = document.createElement('li');
          item.dataset.tkResource = line.resource;
          return item;
        })
      );
    }
    // Rewrite only changed text, so assistive technology is not made to re-read the list.
    Array.from(list.children).forEach((item, i) => {
      setText(item as HTMLElement, lines[i].text);
    });
  }

  private renderProblems(all: string[]): void {
    const element = field<HTMLElement>(this.root, '[data-tk-problems]');
    if (!element) {
      return;
    }
    // Shown by Start even when the hub's error line above the form says the same: that line
    // is out of sight once the user has scrolled down to the button.
    const problems = all.filter(Boolean);
    const text = problems.join('\n');
    if (element.dataset.text === text) {
      return; // unchanged: do not make screen readers repeat it
    }
    element.dataset.text = text;
    element.replaceChildren(
      ...problems.map(problem => {
        const p = document.createElement('p');
        p.textContent = problem;
        return p;
      })
    );
  }
}

function setText(element: HTMLElement | null, text: string): void {
  if (element && element.textContent !== text) {
    element.textContent = text;
  }
}
