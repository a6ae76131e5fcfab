export { proxyRequest, proxyUpgrade, type ProxyTarget } from './proxy';
