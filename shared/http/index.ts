export { proxyRequest, proxyUpgrade, type ProxyOptions, type ProxyTarget } from './proxy';
