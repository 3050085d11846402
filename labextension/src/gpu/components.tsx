/**
 * React views of GPU devices: meters, sparkline, process table, one card per device,
 * MIG groups. Presentational only: data comes in props.
 */
import * as React from 'react';

import type { IGpuDevice, IGpuProcess } from '../api';
import {
  formatBytes,
  formatMemoryPair,
  formatPercent,
  formatPower,
  formatTemperature,
  percentOf,
  shortUuid
} from '../format';
import { ISample, sparklinePaths, sparklineValues, sparklineWindow } from './history';
import { deviceTitle, migParentName } from './summary';
import type { ITranslate } from '../trans';

/** Above this percent a meter turns to the warning color. */
const HIGH_LOAD_PERCENT = 90;

/** The shortest span a sparkline shows, in seconds (its longest is the history window). */
const MIN_SPARK_WINDOW_SECONDS = 20;

const SPARK_WIDTH = 240;
const SPARK_HEIGHT = 36;

export interface IMeterProps {
  label: string;
  percent: number | null;
  text: string;
}

/** A labelled horizontal bar, exposed to assistive technology as a meter. */
export function Meter(props: IMeterProps): JSX.Element {
  const { label, percent, text } = props;
  const level =
    percent === null ? 'unknown' : percent >= HIGH_LOAD_PERCENT ? 'high' : 'normal';
  return (
    <div className="jp-tk-meter">
      <div className="jp-tk-meter-label">
        <span>{label}</span>
        <span className="jp-tk-meter-value">{text}</span>
      </div>
      <div
        className="jp-tk-meter-track"
        role="meter"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent === null ? undefined : Math.round(percent)}
        aria-valuetext={text}
      >
        <div
          className="jp-tk-meter-fill"
          data-level={level}
          style={{ width: `${percent ?? 0}%` }}
        />
      </div>
    </div>
  );
}

export interface ISparklineProps {
  samples: ISample[];
  device: IGpuDevice;
  /** Right edge, seconds since the epoch. */
  end: number;
  /** The longest span shown, in seconds. */
  window: number;
  /** Longest gap between samples that is still drawn as a line, in seconds. */
  maxGap: number;
  trans: ITranslate;
}

/** The device's recent utilization (memory use on MIG) as a small SVG chart. */
export function Sparkline(props: ISparklineProps): JSX.Element {
  const { samples, device, end, trans } = props;
  const window = sparklineWindow(samples, end, MIN_SPARK_WINDOW_SECONDS, props.window);
  const points = sparklineValues(samples, device);
  const paths = sparklinePaths(points, {
    width: SPARK_WIDTH,
    height: SPARK_HEIGHT,
    window,
    end,
    maxGap: props.maxGap
  });
  const span =
    window < 120
      ? trans.__('%1 s', Math.round(window))
      : trans.__('%1 min', Math.round(window / 60));
  const usesMemory = device.mig || device.utilization_gpu === null;
  const caption = usesMemory
    ? trans.__('Memory, last %1', span)
    : trans.__('Utilization, last %1', span);
  return (
    <figure className="jp-tk-sparkline" title={caption}>
      <svg
        viewBox={`0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}`}
        preserveAspectRatio="none"
        role="img"
        aria-label={caption}
      >
        <line
          className="jp-tk-sparkline-grid"
          x1={0}
          x2={SPARK_WIDTH}
          y1={SPARK_HEIGHT / 2}
          y2={SPARK_HEIGHT / 2}
        />
        <path className="jp-tk-sparkline-area" d={paths.area} />
        <path className="jp-tk-sparkline-line" d={paths.line} />
      </svg>
      <figcaption>{caption}</figcaption>
    </figure>
  );
}

export interface IProcessTableProps {
  device: IGpuDevice;
  /** Display name of a kernel of this server, by kernel id (notebook name when known). */
  kernelLabel: (kernelId: string) => string;
  trans: ITranslate;
}

/** What the owner column says of a process no kernel of this server was matched to. */
function unmatchedOwner(device: IGpuDevice, trans: ITranslate): string {
  return device.attribution === 'pid'
    ? trans.__('other process')
    : trans.__('not identified');
}

/**
 * How processes were matched to kernels, when NVML's process ids are not this server's
 * (host ids in a container): by the GPU's device file the kernels hold open, or not at all.
 */
export function AttributionNote(props: IProcessTableProps): JSX.Element | null {
  const { device, kernelLabel, trans } = props;
  if (device.attribution === 'pid') {
    return null;
  }
  const unmatched = device.processes.filter(p => p.kernel_id === null);
  const matched = new Set(device.processes.map(p => p.kernel_id));
  const holding = device.kernels.filter(k => !matched.has(k.kernel_id));
  let text: string;
  if (device.attribution === null) {
    text = trans.__(
      "Processes cannot be matched to kernels: NVML reports process ids from outside this server, and this MIG instance shares its GPU's device file with others."
    );
  } else if (holding.length > 0 && unmatched.length > 0) {
    const known = unmatched.every(p => p.used_memory !== null);
    const used = unmatched.reduce((sum, p) => sum + (p.used_memory ?? 0), 0);
    text = trans._n(
      "Holding this GPU's device file: %2. Its process%3 cannot be matched to one of them: NVML reports process ids from outside this server.",
      "Holding this GPU's device file: %2. Its %1 processes%3 cannot be matched to them one by one: NVML reports process ids from outside this server.",
      unmatched.length,
      holding.map(k => kernelLabel(k.kernel_id)).join(', '),
      known ? ` (${formatBytes(used)})` : ''
    );
  } else {
    text = trans.__(
      "NVML reports process ids from outside this server: processes are matched to kernels by the GPU's device file they hold open."
    );
  }
  return (
    <p
      className="jp-tk-gpu-attribution"
      data-attribution={device.attribution ?? 'none'}
    >
      {text}
    </p>
  );
}

export function ProcessTable(props: IProcessTableProps): JSX.Element {
  const { device, kernelLabel, trans } = props;
  const processes: IGpuProcess[] = device.processes;
  if (processes.length === 0) {
    return <p className="jp-tk-gpu-no-processes">{trans.__('No processes')}</p>;
  }
  return (
    <>
      <table
        className="jp-tk-gpu-processes"
        data-attribution={device.attribution ?? 'none'}
      >
        <thead>
          <tr>
            <th scope="col">{trans.__('PID')}</th>
            <th scope="col">{trans.__('Memory')}</th>
            <th scope="col">{trans.__('Owner')}</th>
          </tr>
        </thead>
        <tbody>
          {processes.map(p => (
            <tr key={p.pid} data-kernel={p.kernel_id ? 'this-server' : 'other'}>
              <td>{p.pid}</td>
              <td>{formatBytes(p.used_memory)}</td>
              <td
                className={
                  p.kernel_id ? 'jp-tk-gpu-process-mine' : 'jp-tk-gpu-process-other'
                }
                title={p.kernel_id ? trans.__('Kernel %1', p.kernel_id) : undefined}
              >
                {p.kernel_id
                  ? trans.__('this notebook: %1', kernelLabel(p.kernel_id))
                  : unmatchedOwner(device, trans)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <AttributionNote {...props} />
    </>
  );
}

/** Power and memory bandwidth, where the device reports them (MIG instances do not). */
function Facts(props: { device: IGpuDevice; trans: ITranslate }): JSX.Element | null {
  const { device, trans } = props;
  const facts: [string, string][] = [];
  if (device.power_usage !== null) {
    facts.push([
      trans.__('Power'),
      formatPower(device.power_usage, device.power_limit)
    ]);
  }
  if (device.utilization_memory !== null) {
    facts.push([
      trans.__('Memory bandwidth'),
      formatPercent(device.utilization_memory)
    ]);
  }
  if (facts.length === 0) {
    return null;
  }
  return (
    <dl className="jp-tk-gpu-facts">
      {facts.map(([label, value]) => (
        <div key={label}>
          <dt>{label}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

export interface IGpuCardProps {
  device: IGpuDevice;
  samples: ISample[];
  end: number;
  window: number;
  maxGap: number;
  kernelLabel: (kernelId: string) => string;
  trans: ITranslate;
}

/** Everything about one device; a failed device shows its error instead of figures. */
export function GpuCard(props: IGpuCardProps): JSX.Element {
  const { device, trans } = props;
  const memoryPercent = percentOf(device.memory_used, device.memory_total);
  return (
    <section
      className={`jp-tk-gpu-card${device.error ? ' jp-tk-gpu-card-failed' : ''}`}
      data-uuid={device.uuid}
      aria-label={device.name}
    >
      <header className="jp-tk-gpu-card-header">
        <span className="jp-tk-gpu-index" title={trans.__('Device index')}>
          {device.index}
        </span>
        <span className="jp-tk-gpu-name" title={`${device.name}\n${device.uuid}`}>
          {deviceTitle(device)}
        </span>
        {device.temperature !== null && (
          <span className="jp-tk-gpu-temperature" title={trans.__('Temperature')}>
            {formatTemperature(device.temperature)}
          </span>
        )}
      </header>
      {device.error ? (
        <p className="jp-tk-gpu-error" role="alert">
          {device.error}
        </p>
      ) : (
        <>
          {device.utilization_gpu !== null && (
            <Meter
              label={trans.__('Utilization')}
              percent={device.utilization_gpu}
              text={formatPercent(device.utilization_gpu)}
            />
          )}
          <Meter
            label={trans.__('Memory')}
            percent={memoryPercent}
            text={formatMemoryPair(device.memory_used, device.memory_total)}
          />
          <Sparkline
            samples={props.samples}
            device={device}
            end={props.end}
            window={props.window}
            maxGap={props.maxGap}
            trans={trans}
          />
          <Facts device={device} trans={trans} />
          <ProcessTable device={device} kernelLabel={props.kernelLabel} trans={trans} />
        </>
      )}
    </section>
  );
}

export interface IMigGroupProps extends Omit<IGpuCardProps, 'device' | 'samples'> {
  parentUuid: string;
  devices: IGpuDevice[];
  samplesOf: (uuid: string) => ISample[];
}

/** The MIG instances of one GPU, under a heading naming that GPU. */
export function MigGroup(props: IMigGroupProps): JSX.Element {
  const { parentUuid, devices, samplesOf, trans, ...rest } = props;
  const model = migParentName(devices);
  return (
    <section className="jp-tk-gpu-mig-group" data-parent-uuid={parentUuid}>
      <h3 className="jp-tk-gpu-mig-heading" title={parentUuid}>
        <span className="jp-tk-gpu-mig-title">
          {trans.__('MIG on %1', shortUuid(parentUuid))}
        </span>
        <span className="jp-tk-gpu-mig-count">
          {model
            ? trans._n('%2 · %1 instance', '%2 · %1 instances', devices.length, model)
            : trans._n('%1 instance', '%1 instances', devices.length)}
        </span>
      </h3>
      {devices.map(device => (
        <GpuCard
          key={device.uuid}
          device={device}
          samples={samplesOf(device.uuid)}
          trans={trans}
          {...rest}
        />
      ))}
    </section>
  );
}
