import { LabIcon } from '@jupyterlab/ui-components';

// `jp-icon3` fills follow the theme (dark on light, light on dark).
const GPU_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M9 3h1.5v2.5h3V3H15v2.5h1.5A2.5 2.5 0 0 1 19 8v1h2v1.5h-2v3h2V15h-2v1a2.5 2.5 0 0 1-2.5 2.5H15V21h-1.5v-2.5h-3V21H9v-2.5H7.5A2.5 2.5 0 0 1 5 16v-1H3v-1.5h2v-3H3V9h2V8a2.5 2.5 0 0 1 2.5-2.5H9V3zm-1.5 4A1 1 0 0 0 6.5 8v8a1 1 0 0 0 1 1h9a1 1 0 0 0 1-1V8a1 1 0 0 0-1-1h-9z"/>
    <path d="M9 9.5h6v5H9z"/>
  </g>
</svg>`;

const EXAMPLES_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M6 2.5h9.5L20 7v12.5a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2v-15a2 2 0 0 1 2-2zm0 1.6a.4.4 0 0 0-.4.4v15a.4.4 0 0 0 .4.4h12a.4.4 0 0 0 .4-.4V7.7h-3.7V4.1H6z"/>
    <path d="M10 10.2l5.2 3.3L10 16.8z"/>
  </g>
</svg>`;

export const gpuIcon = new LabIcon({ name: 'jupyter-tk:gpu', svgstr: GPU_SVG });

export const examplesIcon = new LabIcon({
  name: 'jupyter-tk:examples',
  svgstr: EXAMPLES_SVG
});
