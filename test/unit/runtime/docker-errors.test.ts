import { containerError } from '../../../src/runtime/docker-errors';

function engineError(message: string, statusCode = 500): Error & { statusCode: number; json: { message: string } } {
  return Object.assign(new Error(`(HTTP code ${statusCode}) server error - ${message}`), { statusCode, json: { message } });
}

describe('engine errors', () => {
  test.each([
    ['could not select device driver "nvidia" with capabilities: [[gpu]]', 'NVIDIA_RUNTIME_MISSING'],
    ['Unknown runtime specified nvidia; unknown or invalid runtime name: nvidia', 'NVIDIA_RUNTIME_MISSING'],
    ['could not select device driver "cdi" with capabilities: [[cdi]]', 'CDI_DEVICE_MISSING'],
    ['CDI device injection failed: unresolvable CDI devices nvidia.com/gpu=GPU-1', 'CDI_DEVICE_MISSING'],
    ['driver failed programming external connectivity: Bind for 0.0.0.0:30001 failed: port is already allocated', 'PORT_UNAVAILABLE'],
    ['error setting rlimits for ready process: error setting rlimit type 7: operation not permitted', 'CONTAINER_START_FAILED'],
    ['something else', 'CONTAINER_START_FAILED'],
  ])('maps "%s" to %s', (message, code) => {
    const err = containerError(engineError(message), 'CONTAINER_START_FAILED', 'could not start lease 1', '1');
    expect(err.code).toBe(code);
    expect(err.message).toContain(message);
  });

  test('tells the operator how to get GPU passthrough working', () => {
    const err = containerError(engineError('could not select device driver "nvidia" with capabilities: [[gpu]]'), 'CONTAINER_START_FAILED', 'x');
    expect(err.fix).toMatch(/nvidia-ctk runtime configure/);
  });
});
