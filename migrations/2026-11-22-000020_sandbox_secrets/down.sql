DROP TABLE sandbox_secrets;
