import { useTestMysql } from "../support/mariadb.js";
import { publishStreamSuite } from "./publish-stream-suite.js";

const mysql = useTestMysql();
publishStreamSuite("mysql", (name) => mysql().database(name));
