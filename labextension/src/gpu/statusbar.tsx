/**
 * Status-bar item `GPU 73% · 20/80 GiB`; with several GPUs it shows the busiest one
 * (`GPU max 73% · 20/80 GiB`, see `busiestDevice`). Hidden when no GPU is visible.
 */
import * as React from 'react';

import {
  ITranslator,
  nullTranslator,
  TranslationBundle
} from '@jupyterlab/translation';
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { ISignal, Signal } from '@lumino/signaling';
import type { IDisposable } from '@lumino/disposable';

import { gpuIcon } from '../icons';
import { GpuModel } from './model';
import { statusSummary } from './summary';

export class GpuStatusItem extends ReactWidget {
  constructor(options: GpuStatusItem.IOptions) {
    super();
    this._model = options.model;
    this._onClick = options.onClick;
    this._trans = (options.translator ?? nullTranslator).load('jupyter_tk');
    this.addClass('jp-tk-gpu-status');
    this._model.changed.connect(this._onModelChanged, this);
  }

  /** Emitted when the item should appear or disappear. */
  get activeStateChanged(): ISignal<this, void> {
    return this._activeStateChanged;
  }

  /** Whether the user wants the item (setting `showStatusBar`). */
  get enabled(): boolean {
    return this._enabled;
  }

  set enabled(value: boolean) {
    if (value === this._enabled) {
      return;
    }
    this._enabled = value;
    // The status bar is the only consumer when the panel is closed: stop polling with it.
    if (value) {
      this._pollHandle ??= this._model.acquire();
    } else {
      this._pollHandle?.dispose();
      this._pollHandle = null;
    }
    this._activeStateChanged.emit();
  }

  /** Shown only when enabled and a GPU is visible. */
  isActive(): boolean {
    return this._enabled && this._hasGpu;
  }

  dispose(): void {
    this._pollHandle?.dispose();
    this._pollHandle = null;
    Signal.clearData(this);
    super.dispose();
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this._model.changed}>
        {() => {
          const summary = statusSummary(this._model.snapshot, this._trans);
          if (!summary) {
            return <span />;
          }
          return (
            <button
              type="button"
              className="jp-tk-gpu-status-button"
              title={summary.title}
              onClick={this._onClick}
            >
              <gpuIcon.react tag="span" className="jp-tk-gpu-status-icon" />
              <span className="jp-tk-gpu-status-text">{summary.text}</span>
            </button>
          );
        }}
      </UseSignal>
    );
  }

  private _onModelChanged(): void {
    const hasGpu = statusSummary(this._model.snapshot, this._trans) !== null;
    if (hasGpu !== this._hasGpu) {
      this._hasGpu = hasGpu;
      this._activeStateChanged.emit();
    }
  }

  private _activeStateChanged = new Signal<this, void>(this);
  private _enabled = false;
  private _hasGpu = false;
  private _model: GpuModel;
  private _onClick: () => void;
  private _pollHandle: IDisposable | null = null;
  private _trans: TranslationBundle;
}

export namespace GpuStatusItem {
  export interface IOptions {
    model: GpuModel;
    /** Called on click: opens the GPU panel. */
    onClick: () => void;
    translator?: ITranslator;
  }
}
