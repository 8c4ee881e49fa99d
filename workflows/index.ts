// Every workflow the worker registers.
export { buildImage, progressQuery } from './buildImage.js';
export { scheduledBuild } from './scheduledBuild.js';
